return { nodes = { "a" }, groups = "masters" }
