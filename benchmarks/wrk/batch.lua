-- POST /v1/batch, 100 Segment messages a request, every messageId new (nothing deduplicates).
-- Arguments (after `--`): the templates file, the Authorization header's value, a run nonce.
-- The templates file holds one batch body a line, each messageId starting with "@MID@"; a
-- request takes the next template and puts "<nonce>.<thread>.<counter>." in place of every
-- "@MID@" with one table.concat of the pieces around them: no per-message Lua work.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local templates, headers, prefix
local counter = 0

local function pieces(line)
  local out, from = {}, 1
  while true do
    local at = string.find(line, "@MID@", from, true)
    if not at then
      out[#out + 1] = string.sub(line, from)
      return out
    end
    out[#out + 1] = string.sub(line, from, at - 1)
    from = at + 5
  end
end

function init(args)
  templates = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      templates[#templates + 1] = pieces(line)
    end
  end
  headers = { ["Authorization"] = args[2], ["Content-Type"] = "application/json" }
  prefix = args[3] .. "." .. tostring(thread_no) .. "."
end

function request()
  counter = counter + 1
  local template = templates[counter % #templates + 1]
  return wrk.format("POST", nil, headers, table.concat(template, prefix .. counter .. "."))
end
