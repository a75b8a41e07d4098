-- wrk script: the latency tail (p50 to p99.9 and max, in ms) on one line, and an optional POST
-- body from a file (script arg 1), as ../shared/bench/wrk_report.lua takes it.
--   wrk -t1 -c50 -d4s -s bench/wrk_percentiles.lua http://127.0.0.1:PORT/echo -- ../shared/bench/echo_body.json
function init(args)
  if args[1] then
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function done(summary, latency, requests)
  local out = {}
  for _, p in ipairs({50, 90, 95, 97, 98, 99, 99.5, 99.9}) do
    table.insert(out, string.format("p%s=%.1f", p, latency:percentile(p) / 1000))
  end
  io.write(table.concat(out, " "), string.format(" max=%.1f n=%d\n", latency.max / 1000, summary.requests))
end
