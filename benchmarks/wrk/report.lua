-- Shared by the wrk scripts of the HTTP benchmark (benchmarks/http_api.py): done() prints the
-- run's figures as one JSON line, so that Python reads them instead of parsing wrk's text.
-- Latencies are wrk's (microseconds, from a request's first byte written to its response read).

local function percentiles(latency)
  local out = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    out[#out + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  return table.concat(out, ", ")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, "percentiles": {%s}}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev, percentiles(latency)))
end
