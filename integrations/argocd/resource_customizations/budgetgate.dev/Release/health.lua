-- Argo CD health of a budgetgate Release (one admitted rollout). Lua 5.1 (Argo CD's
-- gopher-lua) and 5.4 alike.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for budgetgate's controller"
  return hs
end
local phase = status.phase
local reason = status.reason
local function with_reason(text)
  if reason ~= nil and reason ~= "" then
    return text .. ": " .. reason
  end
  return text
end
if phase == "Progressing" then
  hs.status = "Progressing"
  local text = "canary"
  if status.stage ~= nil and status.weight ~= nil then
    text = string.format("canary at stage %d, %d%% of pods", status.stage, status.weight)
  end
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if (c.type == "MetricsUnavailable" or c.type == "InsufficientTraffic") and c.status == "True" then
        hs.message = text .. ", held (" .. c.type .. "): " .. (c.message or "")
        return hs
      end
    end
  end
  hs.message = with_reason(text)
elseif phase == "Queued" then
  -- Admitted paused, waiting for the budget (onExhausted: queue): like the paused
  -- Deployment itself, suspended until something outside the sync resumes it.
  hs.status = "Suspended"
  hs.message = reason or "queued"
elseif phase == "Promoted" or phase == "Direct" or phase == "Observed" or phase == "Superseded" then
  hs.status = "Healthy"
  hs.message = with_reason(phase)
elseif phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = with_reason(phase)
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(phase)
end
return hs
