-- Health of a WeChatQRCode, WeChatAccount or ClusterWeChatAccount, read as kstatus (and so Flux) reads it.
local function said(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end
local st = obj.status or {}
if st.observedGeneration ~= nil and st.observedGeneration ~= obj.metadata.generation then
  return { status = "Progressing", message = "The operator has not yet seen generation " .. obj.metadata.generation }
end
local ready = nil
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Reconciling" and c.status == "True" then
    return { status = "Progressing", message = said(c) }
  end
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = said(c) }
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready == nil then
  return { status = "Progressing", message = "Waiting for the operator to reconcile this object" }
end
if ready.status == "True" then
  return { status = "Healthy", message = said(ready) }
end
return { status = "Progressing", message = said(ready) }
