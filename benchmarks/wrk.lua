-- wrk script for benchmarks/throughput.py:
--   wrk ... -s wrk.lua URL -- METHOD PATHS_FILE [BODY_FILE]
-- cycles through the request paths in PATHS_FILE (one a line), each sent with METHOD and, if
-- given, the body in BODY_FILE; requests are formatted once, in init, so the client stays cheap.
-- At the end it prints one JSON line with the counts the benchmark reads.
local requests, index = {}, 0

function init(args)
  local body = nil
  if args[3] then
    local file = assert(io.open(args[3], "rb"))
    body = file:read("*a")
    file:close()
  end
  for path in io.lines(args[2]) do
    requests[#requests + 1] = wrk.format(args[1], path, nil, body)
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "microseconds": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout
  ))
end
