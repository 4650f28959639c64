-- Scrubber throughput on realistic records, as Fluent Bit hands them to the Lua filter after tail
-- (cri), kubernetes (tag metadata) and the json parser: plain lines under "log", JSON lines parsed
-- into fields. usage: luajit scrub_bench.lua FILTER.lua RECORDS ROUNDS
-- Prints "<payload bytes per round> <median seconds per round>"; payload = every string key and
-- value of a record (what the scrubber reads). Records are built before the clock starts.
local filter, count, rounds = arg[1], tonumber(arg[2]), tonumber(arg[3])
dofile(filter)

local seed = 12345
local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
local function pick(list) return list[rand(#list)] end
local function hex(n) local t = {} for i = 1, n do t[i] = string.format("%x", rand(16) - 1) end return table.concat(t) end
local function ts() return string.format("2026-12-0%dT%02d:%02d:%02d.%03dZ", rand(6), rand(24) - 1, rand(60) - 1, rand(60) - 1, rand(1000) - 1) end

local PATHS = { "/api/cases/42/export", "/api/search?q=acme%20holdings&limit=50", "/healthz", "/api/graph/expand",
                "/api/entities/7f3c2a/relations?depth=2", "/static/app.3f9c1e.js" }
local AGENTS = { "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                 "kube-probe/1.33", "python-requests/2.32.3", "Go-http-client/2.0" }
local JAVA = { "org.neo4j.kernel.impl.transaction.log.TransactionLogWriter.append(TransactionLogWriter.java:87)",
               "org.neo4j.bolt.protocol.common.fsm.StateMachineImpl.process(StateMachineImpl.java:141)",
               "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1144)" }
local MESSAGES = { "query finished", "cache miss for entity", "export queued", "user signed in", "rate limit near",
                   "retrying upstream call", "connection pool resized" }

local makers = {
  function() -- an access log line
    return { log = string.format('10.40.%d.%d - - [0%d/Dec/2026:%02d:%02d:%02d +0000] "GET %s HTTP/1.1" %d %d "-" "%s" 0.%03d',
      rand(255), rand(255), rand(6), rand(24) - 1, rand(60) - 1, rand(60) - 1, pick(PATHS), pick({ 200, 200, 304, 404, 500 }),
      rand(90000), pick(AGENTS), rand(999)) }
  end,
  function() -- a JSON application log line, parsed
    return { time = ts(), level = pick({ "info", "info", "warn", "debug", "error" }), msg = pick(MESSAGES),
             request_id = hex(8) .. "-" .. hex(4) .. "-" .. hex(4) .. "-" .. hex(4) .. "-" .. hex(12),
             trace_id = hex(32), duration_ms = rand(2000), path = pick(PATHS), user = "u-" .. rand(99999) }
  end,
  function() -- a Java log line or a stack frame
    if rand(3) == 1 then return { log = ts() .. " INFO  [o.n.b.BoltServer] Bolt enabled on 0.0.0.0:7687." } end
    return { log = "\tat " .. pick(JAVA) .. " ~[neo4j-kernel-5.26.16.jar:5.26.16]" }
  end,
  function() -- a line with personal data or a credential (about one in twenty records)
    if rand(5) > 1 then return { log = ts() .. " DEBUG cache get key=entity:" .. hex(12) .. " hit=" .. tostring(rand(2) == 1) } end
    return { log = pick({ "login failed for ana.lopez+test@mail.example.co.uk from 10.0.0.1",
                          "upstream sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
                          "POST /login password=hunter2 user=bob", "call +44 20 7946 0958 re case 42" }) }
  end,
}

local function record()
  local r = makers[rand(#makers)]()
  r.stream, r._p = "stdout", "F"
  r.kubernetes = { namespace_name = "intelgraph-app", pod_name = "api-7d9f8b6c5-x2k4q", container_name = "api",
                   docker_id = hex(64) }
  return r
end

local function payload(t)
  local n = 0
  for k, v in pairs(t) do
    if type(k) == "string" then n = n + #k end
    if type(v) == "string" then n = n + #v elseif type(v) == "table" then n = n + payload(v) end
  end
  return n
end

local times, bytes = {}, 0
for round = 1, rounds do
  seed = 12345 -- the same records every round (scrub edits them in place, so build them anew)
  local records, n = {}, 0
  for i = 1, count do records[i] = record(); n = n + payload(records[i]) end
  bytes = n
  local started = os.clock()
  for i = 1, count do scrub("kube.var.log.containers.x", 0, records[i]) end
  times[round] = os.clock() - started
end
table.sort(times)
print(string.format("%d %.6f", bytes, times[math.floor((rounds + 1) / 2)]))
