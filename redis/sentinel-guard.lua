-- Keeps HAProxy's "primary" backend in line with the Sentinels (loaded by
-- haproxy.cfg). Every 200 ms it reads the checks of the "named-redis-N"
-- backends, in which a Sentinel is UP while it names redis-N as the primary,
-- and finds the node that a majority of the Sentinels names. That node is
-- let out of maintenance (its own check still has to find role:master);
-- every other node is put into maintenance and its clients are cut off.
-- A majority can name only one node at a time; while the checks still
-- count the Sentinels for an old and a new node at once, or no majority
-- names one, every node is in maintenance. So at most one node is ever out
-- of it.
--
-- It reads only what HAProxy's own checks found, so it opens no connection
-- and forks nothing.

local INTERVAL_MS = 200

-- Whether a Sentinel's check says it names the node: UP ("UP", or "UP 1/2"
-- after one failed check) and checked at least once. A server whose name
-- resolves is put UP before its first check ("INI"), which says nothing.
local function names(sentinel)
  local stats = sentinel:get_stats()
  local checked = (stats["check_status"] or ""):gsub("^%* ", "")
  return (stats["status"] or ""):match("^UP") ~= nil and checked ~= "INI" and checked ~= ""
end

-- The node a majority of the Sentinels names, or nil.
local function agreed(nodes)
  local chosen
  for node in pairs(nodes) do
    local sentinels, naming = 0, 0
    for _, sentinel in pairs(core.backends["named-" .. node].servers) do
      sentinels = sentinels + 1
      if names(sentinel) then naming = naming + 1 end
    end
    if naming > sentinels // 2 then
      if chosen then return nil end
      chosen = node
    end
  end
  return chosen
end

-- Lets `chosen` (nil: none) out of maintenance, every other node in.
local function apply(nodes, chosen)
  for name, server in pairs(nodes) do
    -- "MAINT" is the maintenance this guard sets; a node whose name does
    -- not resolve is in "MAINT (resolution)" too, and leaves it on its own
    -- once it resolves, so that one is put into this guard's as well.
    local status = server:get_stats()["status"] or ""
    if name == chosen then
      if status:match("^MAINT") then server:set_ready() end
    elseif status ~= "MAINT" then
      server:set_maint()
      server:shut_sess()
    end
  end
end

local function guard()
  local nodes = core.backends["primary"].servers
  local last = false
  while true do
    local ok, chosen = pcall(agreed, nodes)
    if not ok then
      -- Whatever went wrong, no node without the Sentinels' word.
      core.log(core.err, "sentinel-guard: " .. tostring(chosen) .. "; every node goes into maintenance")
      chosen = nil
    end
    local applied, err = pcall(apply, nodes, chosen)
    if not applied then core.log(core.err, "sentinel-guard: " .. tostring(err)) end
    if chosen ~= last then
      core.log(core.info, "sentinel-guard: " .. (chosen
        and ("a majority of the Sentinels names " .. chosen .. "; the other nodes are in maintenance")
        or "no majority of the Sentinels names one node; every node is in maintenance"))
      last = chosen
    end
    core.msleep(INTERVAL_MS)
  end
end

core.register_task(guard)
