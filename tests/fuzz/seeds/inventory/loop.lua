local nodes = {}
for i = 1, 8 do nodes[i] = { name = "n" .. i, host = "10.0.0." .. i } end
return { nodes = nodes, groups = { masters = { "n1", "n2" } } }
