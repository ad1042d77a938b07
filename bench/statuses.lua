-- wrk reporter for bench/load.py's outsiders row: report.lua's line, and one more that
-- counts the answers by status and those that carry a Retry-After header.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
local summary_line = done

statuses, retry_after = {}, 0 -- each thread's own counts
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  for name, _ in pairs(headers) do
    if name:lower() == "retry-after" then
      retry_after = retry_after + 1
    end
  end
end

function done(summary, latency, requests)
  local all, with, parts = {}, 0, {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      all[status] = (all[status] or 0) + count
    end
    with = with + thread:get("retry_after")
  end
  for status, count in pairs(all) do
    table.insert(parts, string.format("%d=%d", status, count))
  end
  table.sort(parts)
  io.write(string.format("STATUSES retry_after=%d %s\n", with, table.concat(parts, " ")))
  summary_line(summary, latency, requests)
end
