package example

emails := {"alice@example.com": "alice", "bob smith": "bob", "v1.2": "dotted"}
