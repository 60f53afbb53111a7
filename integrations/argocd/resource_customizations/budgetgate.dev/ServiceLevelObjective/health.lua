-- Argo CD health of a budgetgate ServiceLevelObjective. Degraded when its budget is
-- exhausted or burning at page level, Unknown when metrics are missing. Lua 5.1 (Argo
-- CD's gopher-lua) and 5.4 alike.
local hs = {}
local status = obj.status
if status == nil or status.state == nil then
  hs.status = "Progressing"
  hs.message = "not evaluated yet"
  return hs
end
local left = "unknown"
if status.remaining ~= nil then
  left = string.format("%.1f%%", status.remaining * 100)
end
local state = status.state
if state == "Exhausted" then
  hs.status = "Degraded"
  hs.message = "budget exhausted, " .. left .. " left"
elseif state == "Burning" then
  hs.status = "Degraded"
  local alerts = ""
  if status.alerts ~= nil and status.alerts[1] ~= nil then
    alerts = " (" .. table.concat(status.alerts, ", ") .. ")"
  end
  hs.message = "burning at page level" .. alerts .. ", " .. left .. " left"
elseif state == "Unknown" then
  hs.status = "Unknown"
  local why = "metrics missing"
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == "Ready" and c.status == "False" and c.message ~= nil then
        why = c.message
      end
    end
  end
  hs.message = why
else
  hs.status = "Healthy"
  hs.message = left .. " left, band " .. tostring(status.band)
end
return hs
