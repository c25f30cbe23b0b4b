-- wrk script for Tenantry load scenarios.
-- BENCH_SCENARIO: me | read | list | create | login | refresh
-- BENCH_DATA, one entry per line:
--   me, read, list, create: "token tenant_id project_id"
--   login:                  "email" (the password is BENCH_PASSWORD)
--   refresh:                "refresh_token", each valid exactly once; BENCH_THREADS (wrk -t)
--                           says how to split them so no two threads share one
-- BENCH_DELAY_MS (optional): pause of each connection between requests, in milliseconds
local scenario = os.getenv("BENCH_SCENARIO")
local rows = {}
local counter = 0
local thread_id = 0
local threads = {}
local password = os.getenv("BENCH_PASSWORD") or ""
-- refresh: this thread's unused refresh tokens. Every request takes one and every 200 puts
-- back its successor, so each token is presented once (the server rotates them and treats a
-- second use as theft). Holding at least one token per connection keeps the pool from running
-- dry; an exhausted pool sends a dummy token, which shows up as non-2xx.
local fresh = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 1
  local data = os.getenv("BENCH_DATA")
  if scenario == "refresh" then
    local count = tonumber(os.getenv("BENCH_THREADS") or "1")
    local i = 0
    for line in io.lines(data) do
      if line ~= "" and i % count == thread_id - 1 then
        fresh[#fresh + 1] = line
      end
      i = i + 1
    end
  elseif scenario == "login" then
    for line in io.lines(data) do
      if line ~= "" then
        rows[#rows + 1] = { line }
      end
    end
  else
    for line in io.lines(data) do
      local token, tenant, project = line:match("(%S+) (%S+) (%S+)")
      rows[#rows + 1] = { token, tenant, project }
    end
  end
  math.randomseed(os.time() * 1000 + thread_id)
end

local json = { ["Content-Type"] = "application/json" }

-- me, read, list: each thread formats this many requests up front (random members and
-- projects, as before) and cycles through them, so wrk does not build a request in Lua per
-- request: on a shared 2-core machine that CPU is taken from the server.
local PREFORMATTED = 4096
local prepared = {}
local next_prepared = 0

local function fixed_request(row)
  local headers = { ["Authorization"] = "Bearer " .. row[1] }
  if scenario == "me" then
    return wrk.format("GET", "/api/v1/users/me", headers)
  elseif scenario == "read" then
    return wrk.format("GET", "/api/v1/tenants/" .. row[2] .. "/projects/" .. row[3], headers)
  elseif scenario == "list" then
    return wrk.format("GET", "/api/v1/tenants/" .. row[2] .. "/projects?limit=20", headers)
  end
  return nil
end

function request()
  if next_prepared == 0 and (scenario == "me" or scenario == "read" or scenario == "list") then
    for i = 1, PREFORMATTED do
      prepared[i] = fixed_request(rows[math.random(#rows)])
    end
  end
  if #prepared > 0 then
    next_prepared = next_prepared % #prepared + 1
    return prepared[next_prepared]
  end
  if scenario == "refresh" then
    local token = table.remove(fresh) or "tnr_pool-exhausted"
    return wrk.format("POST", "/api/v1/auth/refresh", json, '{"refresh_token":"' .. token .. '"}')
  end
  local row = rows[math.random(#rows)]
  if scenario == "login" then
    local body = string.format('{"email":"%s","password":"%s"}', row[1], password)
    return wrk.format("POST", "/api/v1/auth/login", json, body)
  end
  local headers = { ["Authorization"] = "Bearer " .. row[1] }
  if scenario == "create" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    local body = string.format('{"name":"load-%d-%d-%d"}', os.time(), thread_id, counter)
    return wrk.format("POST", "/api/v1/tenants/" .. row[2] .. "/projects", headers, body)
  end
  error("unknown BENCH_SCENARIO " .. tostring(scenario))
end

-- BENCH_DELAY_MS > 0: each connection pauses that long between requests (a paced client).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if pause > 0 then
  function delay()
    return pause
  end
end

-- Only the refresh scenario reads response bodies (wrk skips parsing when there is no
-- response function, so the other scenarios are measured as before).
if scenario == "refresh" then
  function response(status, headers, body)
    if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
        fresh[#fresh + 1] = token
      end
    end
  end
end
