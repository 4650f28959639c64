-- Fluent Bit Lua filter: scrub personal data and credentials from a record before it leaves the node.
--
-- Removes the fields the privacy notes name (docs/decisions/010-log-scrubbing-fields.md; PR 43: req.headers.authorization, password, ssn,
-- card.number, email; PR 52: authorization, email, password, user.email, db.statement.parameters,
-- http.request.header.authorization) wherever they appear - as nested tables or as dotted keys -
-- and masks, inside every string value: e-mail addresses, phone numbers, bearer tokens, AWS access
-- key ids and secret keys, US social security numbers and payment card numbers (Luhn-checked, so
-- order ids and timestamps stay). The same field names are masked in plain text too (a line the
-- JSON parser did not parse, e.g. truncated JSON or `password=...`): key=value, key: value and
-- "key": "value" forms, and HTTP Basic credentials. A record with nothing to scrub is returned as
-- "unchanged" (0). Fluent Bit embeds LuaJIT: Lua 5.1 semantics only (no integer division, bit or
-- utf8 libraries, goto or __pairs).
-- Any error drops the record (-1): an unscrubbed line must never be shipped.
--
-- Fluent Bit calls scrub(tag, timestamp, record) and reads back (code, timestamp, record): code 0
-- keeps the record, 2 replaces it keeping the timestamp, -1 drops it (Fluent Bit manual, "Lua" filter).

local DROP_NAMES = {
  authorization = true, password = true, passwd = true, ssn = true, email = true,
  cookie = true, ["set-cookie"] = true,
}
local DROP_PATHS = {
  ["card.number"] = true, ["user.email"] = true, ["db.statement.parameters"] = true,
  ["http.request.header.authorization"] = true, ["req.headers.authorization"] = true,
}

local function luhn(digits)
  local sum, double = 0, false
  for i = #digits, 1, -1 do
    local d = tonumber(digits:sub(i, i))
    if double then d = d * 2; if d > 9 then d = d - 9 end end
    sum = sum + d
    double = not double
  end
  return sum % 10 == 0
end

local function card(candidate)
  local digits = candidate:gsub("[ %-]", "")
  if #digits >= 13 and #digits <= 19 and luhn(digits) then return "[card]" end
  return nil -- keep the original text
end

local function phone(candidate)
  local digits = candidate:gsub("%D", "")
  if #digits >= 8 and #digits <= 15 then return "[phone]" end
  return nil
end

-- RFC 7617: Basic credentials are base64 of "user-id:password"; decoding and finding the colon
-- keeps prose like "basic settings" unchanged. Arithmetic only (Lua 5.1 has no bit operators).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function basic(prefix, token)
  local bits, nbits, out = 0, 0, {}
  for c in token:gsub("=+$", ""):gmatch(".") do
    bits, nbits = bits * 64 + B64:find(c, 1, true) - 1, nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local byte = math.floor(bits / 2 ^ nbits)
      out[#out + 1] = string.char(byte)
      bits = bits - byte * 2 ^ nbits
    end
  end
  if table.concat(out):find(":", 1, true) then return prefix .. "[credentials]" end
  return nil
end

-- "password=hunter2", "Authorization: Basic x", '"email": "a@b"' in text: a name (any case, also
-- as the end of a longer key like user_password, userEmail or user.email, never the start of one
-- like email_verified) followed by = or : and a value. Values already masked ("[...]") stay.
local TEXT_NAMES = { "authorization", "password", "passwd", "ssn", "email", "cookie" }
local SCHEMES = { bearer = true, basic = true, digest = true, negotiate = true }

local function any_case(name)
  return (name:gsub("%a", function(c) return "[" .. c:upper() .. c:lower() .. "]" end))
end

local function unquoted(prefix, value)
  if SCHEMES[value:lower()] then return nil end -- "Authorization: Bearer [token]": already masked
  return prefix .. "[redacted]"
end

local function assignment_rules()
  local rules = {}
  for _, name in ipairs(TEXT_NAMES) do
    local key = any_case(name) .. "[\"']?%s*[=:]%s*"
    -- a quoted value up to its closing quote (an escaped quote does not end it)
    rules[#rules + 1] = { "(" .. key .. ")\"(.-[^\\])\"", "%1\"[redacted]\"" }
    if name == "authorization" then
      -- "Authorization: Digest abc": the scheme stays, whatever credential follows is masked
      rules[#rules + 1] = { "(" .. key .. "%a+%s+)[^%s&,;\"'%[%]]+", "%1[credentials]" }
    end
    -- an unquoted (or unterminated) value up to a separator; a Cookie header's value is every
    -- cookie to the end of the line ("sid=1; csrf=2")
    local value = name == "cookie" and "[^\r\n\"'%[%]]+" or "[^%s&,;\"'%[%]]+"
    rules[#rules + 1] = { "(" .. key .. "[\"']?)(" .. value .. ")", unquoted }
  end
  return rules
end

-- Order matters: tokens and keys before the digit patterns that could match inside them.
local RULES = {
  { "[Bb][Ee][Aa][Rr][Ee][Rr]%s+[%w%-%._~%+/]+=*", "Bearer [token]" },
  { "(%f[%w][Bb][Aa][Ss][Ii][Cc]%s+)([%w%+/]+=*)", basic },
  { "(aws_secret_access_key[\"']?%s*[=:]%s*[\"']?)[%w/%+]+", "%1[aws-secret]" },
  { "%f[%w]AKIA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]%f[%W]", "[aws-key]" },
  { "%f[%w]ASIA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]%f[%W]", "[aws-key]" },
  { "[%w%._%%%+%-]+@[%w%-]+%.[%w%.%-]*%a%a", "[email]" },
  { "%f[%d]%d%d%d%-%d%d%-%d%d%d%d%f[%D]", "[ssn]" },
  { "%f[%d]%d[%d %-]+%d%f[%D]", card },
  { "%+%d[%d %-%.%(%)]+%d%f[%D]", phone },
  { "%(%d%d%d%)%s?%d%d%d[%s%.%-]%d%d%d%d%f[%D]", "[phone]" },
  { "%f[%d]%d%d%d[%s%.%-]%d%d%d[%s%.%-]%d%d%d%d%f[%D]", "[phone]" },
}
for _, rule in ipairs(assignment_rules()) do RULES[#RULES + 1] = rule end

local function scrub_string(value)
  local changed = false
  for _, rule in ipairs(RULES) do
    local result, count = value:gsub(rule[1], rule[2])
    if count > 0 and result ~= value then value, changed = result, true end
  end
  return value, changed
end

local function scrub_table(node, path)
  local changed = false
  for key, value in pairs(node) do
    local name = type(key) == "string" and key:lower() or nil
    local full = name and (path and (path .. "." .. name) or name) or path
    if name and (DROP_NAMES[name] or DROP_PATHS[full] or DROP_NAMES[name:match("[^%.]+$")]) then
      node[key] = nil
      changed = true
    elseif type(value) == "string" then
      local scrubbed, did = scrub_string(value)
      if did then node[key] = scrubbed; changed = true end
    elseif type(value) == "table" then
      if scrub_table(value, full) then changed = true end
    end
  end
  return changed
end

function scrub(tag, timestamp, record)
  local ok, changed = pcall(scrub_table, record, nil)
  if not ok then
    return -1, timestamp, record
  end
  if changed then
    return 2, timestamp, record
  end
  return 0, timestamp, record
end
