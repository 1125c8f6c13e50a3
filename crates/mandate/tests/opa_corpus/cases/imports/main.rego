package app

import data.lib.roles
import data.lib.roles.admins as admin_set
import input.user

is_admin if user in roles.admins
also_admin if user in admin_set
