-- GET a random profile's traits from the Profile API, one profile a request.
-- Arguments (after `--`): the Authorization header's value, the user id prefix, the number of
-- users (ids <prefix>1 .. <prefix>N), a seed.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local headers, prefix, users

function init(args)
  headers = { ["Authorization"] = args[1] }
  prefix = "/v1/spaces/default/collections/users/profiles/user_id:" .. args[2]
  users = tonumber(args[3])
  math.randomseed(tonumber(args[4]) + thread_no)
end

function request()
  return wrk.format("GET", prefix .. math.random(1, users) .. "/traits", headers)
end
