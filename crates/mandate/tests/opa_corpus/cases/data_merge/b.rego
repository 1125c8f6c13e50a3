package acme.policy.extra

regions := {r | some r in data.acme.config.regions}
