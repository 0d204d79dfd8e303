-- For test_unit_render.sh: renders TEMPLATE with the variables of ENV_SH (read through
-- kcmrun's own environment.sh inventory loader, i.e. evaluated by bash) into OUT.
local inventory = require "kcm.inventory"
local template = require "kcm.template"
local fs = require "kcm.native.fs"

local inv = inventory.load(assert(os.getenv("ENV_SH")))
local text = template.render_file(assert(os.getenv("TEMPLATE")), inv.vars)
fs.write(assert(os.getenv("OUT")), text)
