package lib.roles

admins := {"alice", "carol"}
