-- At most one node behind pg-haproxy's primary endpoint (loaded by
-- haproxy.cfg). Every 200 ms it reads the /primary checks of the
-- "postgres_primary" backend. While exactly one node passes, that node
-- takes connections. When two pass at once (a superseded primary that has
-- not fenced itself yet beside the promoted one), nothing here can tell
-- which holds the acknowledged commits, so both are drained and their
-- clients cut off until one stops passing: no client writes to two
-- primaries through this proxy.
--
-- Drain (weight 0), not maintenance: HAProxy stops checking a server in
-- maintenance, and this guard needs every check to keep running. It reads
-- only what HAProxy's own checks found, so it opens no connection and
-- forks nothing.

local INTERVAL_MS = 200

-- Its /primary check passes: UP ("UP", or "UP 1/2" after one failed check)
-- or DRAIN (this guard's weight 0 over an UP server).
local function passing(server)
  local status = server:get_stats()["status"] or ""
  return status:match("^UP") ~= nil or status:match("^DRAIN") ~= nil
end

-- Checked at least once: a server whose name resolves is put UP before its
-- first check ("INI"), which says nothing.
local function checked(server)
  local status = (server:get_stats()["check_status"] or ""):gsub("^%* ", "")
  return status ~= "INI" and status ~= ""
end

-- The servers whose checks pass.
local function primaries(servers)
  local up = {}
  for name, server in pairs(servers) do
    if passing(server) then up[#up + 1] = name end
  end
  table.sort(up)
  return up
end

-- One passing server takes connections once it has been checked; two or
-- more, none.
local function apply(servers, up)
  local alone = #up == 1 and checked(servers[up[1]]) and up[1] or nil
  for name, server in pairs(servers) do
    local drained = (server:get_stats()["status"] or ""):match("^DRAIN") ~= nil
    if name == alone then
      if drained then server:set_ready() end
    elseif passing(server) and not drained then
      server:set_drain()
      server:shut_sess()
    end
  end
end

local function guard()
  local servers = core.backends["postgres_primary"].servers
  local last = ""
  while true do
    local ok, up = pcall(primaries, servers)
    if ok then
      local applied, err = pcall(apply, servers, up)
      if not applied then core.log(core.err, "primary-guard: " .. tostring(err)) end
      local now = table.concat(up, " ")
      if #up > 1 and now ~= last then
        core.log(core.warning, "primary-guard: " .. now .. " all pass the primary check; none takes connections until only one does")
      elseif #up <= 1 and last:find(" ") then
        core.log(core.info, "primary-guard: one primary again (" .. (up[1] or "none") .. ")")
      end
      last = now
    else
      core.log(core.err, "primary-guard: " .. tostring(up))
    end
    core.msleep(INTERVAL_MS)
  end
end

core.register_task(guard)
