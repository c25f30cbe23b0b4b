-- wrk script for Tenantry load scenarios.
-- BENCH_SCENARIO: me | read | list | create; BENCH_DATA: lines of "token tenant_id project_id".
local scenario = os.getenv("BENCH_SCENARIO")
local rows = {}
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_DATA")) do
    local token, tenant, project = line:match("(%S+) (%S+) (%S+)")
    rows[#rows + 1] = { token, tenant, project }
  end
  thread_id = tid or 0
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  local row = rows[math.random(#rows)]
  local headers = { ["Authorization"] = "Bearer " .. row[1] }
  if scenario == "me" then
    return wrk.format("GET", "/api/v1/users/me", headers)
  elseif scenario == "read" then
    return wrk.format("GET", "/api/v1/tenants/" .. row[2] .. "/projects/" .. row[3], headers)
  elseif scenario == "list" then
    return wrk.format("GET", "/api/v1/tenants/" .. row[2] .. "/projects?limit=20", headers)
  elseif scenario == "create" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    local body = string.format('{"name":"load-%d-%d-%d"}', os.time(), thread_id, counter)
    return wrk.format("POST", "/api/v1/tenants/" .. row[2] .. "/projects", headers, body)
  end
  error("unknown BENCH_SCENARIO " .. tostring(scenario))
end
