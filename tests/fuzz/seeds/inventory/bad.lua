return { nodes = { { name = "a", host = "x;y" } }, groups = { g = { "b" } } }
