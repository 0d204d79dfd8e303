return { nodes = { { name = "a", vars = 5 } }, vars = {} }
