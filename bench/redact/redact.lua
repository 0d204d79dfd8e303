-- Redaction cost on the issue-25 shapes: a 1 MB line, a 20,000-char argv
-- word, a 12 KB base64 diff line (and the audit's 10 KB token and dashes).
-- REDACT_MODULE: a redact.lua to load instead of the built-in (the old one,
-- for comparison); REDACT_CASES: names to run (default all).
-- Prints "case<TAB>ms" (best of 3, CPU time).
local R
if os.getenv("REDACT_MODULE") then R = assert(loadfile(os.getenv("REDACT_MODULE")))() else R = require "kcm.redact" end
local b64 = ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw"):rep(300):sub(1, 12000)
local CASES = {
  { "1mb_line", R.text, ("x token: y --password z https://a:b@c/ plain words 0123 "):rep(19000):sub(1, 1 << 20) },
  { "argv_20000", R.text, "true " .. ("a"):rep(20000) },
  { "base64_12k_diff", R.lines, "+  tls.crt: " .. b64 },
  { "token_10k", R.text, "token: " .. ("A1b2"):rep(2500) },
  { "dashes_10k", R.text, ("-"):rep(10240) },
}
local want = os.getenv("REDACT_CASES")
for _, c in ipairs(CASES) do
  if not want or want:find(c[1], 1, true) then
    local best = math.huge
    for _ = 1, 3 do
      local t = os.clock()
      c[2](c[3])
      best = math.min(best, os.clock() - t)
    end
    print(string.format("%s\t%.2f", c[1], best * 1000))
    io.stdout:flush()
  end
end
