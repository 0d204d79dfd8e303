-- `--timeline FILE.svg`: every node's steps on one time axis, so a user sees
-- where the time goes and that the nodes really run side by side.
local M = {}

local PALETTE = { "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#e15759", "#ff9da7" }

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

--- spans: array of {node=, step=, t0=, t1=, status=}; t0 of the run.
function M.svg(spans, run_t0, run_t1)
  local rows, row_of = {}, {}
  local steps, color_of = {}, {}
  for _, s in ipairs(spans) do
    if not row_of[s.node] then rows[#rows + 1] = s.node; row_of[s.node] = #rows end
    if not color_of[s.step] then
      steps[#steps + 1] = s.step
      color_of[s.step] = PALETTE[(#steps - 1) % #PALETTE + 1]
    end
  end
  local total = math.max(run_t1 - run_t0, 1e-3)
  local left, width, rowh, top = 110, 900, 18, 30
  local height = top + #rows * rowh + 40 + math.ceil(#steps / 5) * 16
  local out = {}
  local function add(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">',
      left + width + 20, height)
  add('<text x="%d" y="16" font-size="13">kcmrun timeline: %.3f s</text>', left, total)
  -- time grid
  local tick = 10 ^ math.floor(math.log(total, 10))
  if total / tick < 3 then tick = tick / 5 elseif total / tick < 6 then tick = tick / 2 end
  local t = 0
  while t <= total + 1e-9 do
    local x = left + t / total * width
    add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>', x, top - 4, x, top + #rows * rowh)
    add('<text x="%.1f" y="%d" fill="#666" text-anchor="middle">%gs</text>', x, top + #rows * rowh + 12, t)
    t = t + tick
  end
  for i, name in ipairs(rows) do
    add('<text x="%d" y="%d" text-anchor="end">%s</text>', left - 6, top + (i - 1) * rowh + 12, esc(name))
  end
  for _, s in ipairs(spans) do
    local x = left + (s.t0 - run_t0) / total * width
    local w = math.max((s.t1 - s.t0) / total * width, 1)
    local y = top + (row_of[s.node] - 1) * rowh + 2
    local stroke = (s.status == "failed" or s.status == "unreachable") and ' stroke="#c00" stroke-width="2"' or ""
    add('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"%s><title>%s %s: %s %.3fs</title></rect>',
        x, y, w, rowh - 4, color_of[s.step], stroke, esc(s.node), esc(s.step), esc(s.status), s.t1 - s.t0)
  end
  local ly = top + #rows * rowh + 30
  for i, step in ipairs(steps) do
    local x = left + ((i - 1) % 5) * 180
    local y = ly + math.floor((i - 1) / 5) * 16
    add('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>', x, y - 9, color_of[step], x + 14, y, esc(step))
  end
  add('</svg>')
  return table.concat(out, "\n") .. "\n"
end

return M
