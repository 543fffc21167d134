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

-- A node other than the one this guard last let out must be named by a
-- majority for this long before it is let out. Each HAProxy runs its own
-- guard on its own checks: when the Sentinels switch, the proxy whose
-- checks see the switch first would let the new primary out while another
-- still sends clients to the old one, until its next check (a Sentinel is
-- asked every 500 ms, a check may take its 1 s timeout, and the guard looks
-- every 200 ms). An old primary cut off from the Sentinels only still says
-- role:master, so for that while two nodes took writes through the two
-- proxies (the fault harness saw it once at a cut-from-sentinels). Every
-- proxy drops the old node at its first check after the switch; holding
-- the new one back longer than that keeps them apart. The node let out
-- last comes back at once after a moment of no majority (a slow check),
-- as long as no other node was named in between.
local HOLD_MS = 1500

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

local function now_ms()
  local t = core.now()
  return t.sec * 1000 + t.usec // 1000
end

local function guard()
  local nodes = core.backends["primary"].servers
  local last = false
  -- The node that may be let out at once (let out last, and no other node
  -- named since), and the node named now with the time it was first named.
  local trusted, named, since = nil, nil, 0
  while true do
    local ok, chosen = pcall(agreed, nodes)
    if not ok then
      -- Whatever went wrong, no node without the Sentinels' word.
      core.log(core.err, "sentinel-guard: " .. tostring(chosen) .. "; every node goes into maintenance")
      chosen = nil
    end
    local now, held = now_ms(), nil
    if chosen ~= named then named, since = chosen, now end
    if chosen ~= nil and chosen ~= trusted then
      trusted = nil
      if now - since < HOLD_MS then held, chosen = chosen, nil end
    end
    if chosen ~= nil then trusted = chosen end
    local applied, err = pcall(apply, nodes, chosen)
    if not applied then core.log(core.err, "sentinel-guard: " .. tostring(err)) end
    local state = chosen or (held and ("held:" .. held)) or nil
    if state ~= last then
      local says
      if chosen then
        says = "a majority of the Sentinels names " .. chosen .. "; the other nodes are in maintenance"
      elseif held then
        says = "a majority of the Sentinels names " .. held .. ", a node not let out last: every node stays in maintenance for "
          .. HOLD_MS .. " ms, until every proxy has dropped the old one"
      else
        says = "no majority of the Sentinels names one node; every node is in maintenance"
      end
      core.log(core.info, "sentinel-guard: " .. says)
      last = state
    end
    core.msleep(INTERVAL_MS)
  end
end

core.register_task(guard)
