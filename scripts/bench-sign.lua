-- wrk script for scripts/bench-sign and scripts/bench-register: every request sends the next
-- pre-generated JSON body (each with its own fresh token) and only the expected status counts.
-- Environment: BENCH_PATH, BENCH_BODIES (one body per line), BENCH_STATUS, BENCH_THREADS.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS"))
  path = os.getenv("BENCH_PATH")
  want = tonumber(os.getenv("BENCH_STATUS"))
  bodies = {}
  local i = 0
  -- Each thread takes every n-th line, so no token is sent twice.
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if i % n == id then
      bodies[#bodies + 1] = line
    end
    i = i + 1
  end
  idx, ok, other = 0, 0, 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  idx = idx + 1
  if idx > #bodies then
    -- Out of tokens: stop rather than replay one.
    wrk.thread:stop()
    idx = #bodies
  end
  return wrk.format("POST", path, headers, bodies[idx])
end

function response(status, headers, body)
  if status == want then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT status=%d count=%d other=%d seconds=%.2f rate=%.0f/s p99=%.1fms\n",
    tonumber(os.getenv("BENCH_STATUS")), total_ok, total_other, secs, total_ok / secs, latency:percentile(99) / 1000))
end
