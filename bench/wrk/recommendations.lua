-- wrk script: GET /api/v1/users/{id}/recommendations?n=N, cycling over users 1..U.
-- Arguments (after `--`): U (default 943, the ml-100k users) and N (default 10).
-- Each wrk thread starts at a different user, so the threads do not ask for the same user
-- at the same moment.

local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local users = 943
local n = 10
local current = 0

function init(args)
  if args[1] then users = tonumber(args[1]) end
  if args[2] then n = tonumber(args[2]) end
  current = ((thread_index or 0) * 101) % users
end

function request()
  current = current % users + 1
  return wrk.format("GET", "/api/v1/users/" .. current .. "/recommendations?n=" .. n)
end

-- Machine-readable results for bench/serve.py, so that several runs can be merged exactly:
-- one SUMMARY line, then the latency histogram as "LAT <microseconds> <count>" lines
-- (wrk 4 records latencies in 1 µs buckets; latency(i) is the i-th distinct value and its count).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY duration_us=%d requests=%d bytes=%d connect=%d read=%d " ..
    "write=%d status=%d timeout=%d\n", summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout))
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format("LAT %d %d\n", value, count))
  end
end
