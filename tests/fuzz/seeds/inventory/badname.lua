return { nodes = { { name = "a b", host = "x" } } }
