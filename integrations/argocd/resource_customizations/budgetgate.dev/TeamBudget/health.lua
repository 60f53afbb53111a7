-- Argo CD health of a budgetgate TeamBudget: its worst tier (tiers are listed worst
-- first). Degraded when the budget is exhausted, burning at page level, or no longer
-- evaluated; Unknown when metrics are missing. Lua 5.1 (Argo CD's gopher-lua) and 5.4.
local hs = {}
local status = obj.status
if status ~= nil and status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Stale" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.message or "budgets are not being updated"
      return hs
    end
  end
end
if status == nil or status.tiers == nil or status.tiers[1] == nil then
  hs.status = "Progressing"
  hs.message = "not evaluated yet"
  return hs
end
local tier = status.tiers[1]
local left = "unknown"
if tier.remaining ~= nil then
  left = string.format("%.1f%%", tier.remaining * 100)
end
local where = "tier " .. tostring(tier.tier) .. ": "
local state = tier.state
if state == "Exhausted" then
  hs.status = "Degraded"
  hs.message = where .. "budget exhausted, " .. left .. " left"
elseif state == "Burning" then
  hs.status = "Degraded"
  local alerts = ""
  if tier.alerts ~= nil and tier.alerts[1] ~= nil then
    alerts = " (" .. table.concat(tier.alerts, ", ") .. ")"
  end
  hs.message = where .. "burning at page level" .. alerts .. ", " .. left .. " left"
elseif state == "Unknown" or state == nil then
  hs.status = "Unknown"
  hs.message = where .. "metrics missing, " .. left .. " left"
else
  hs.status = "Healthy"
  hs.message = where .. left .. " left, band " .. tostring(tier.band)
end
return hs
