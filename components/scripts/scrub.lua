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

-- Each rule: { pattern, replacement, needle }. A rule runs only where its needle occurs (plain
-- search, case-insensitive for any_case names): every match contains it, so skipping is exact, and a
-- line without "password" costs one memchr-speed search instead of a pattern pass (issue 24 item
-- 11: >= 20 MB/s under LuaJIT). Every pattern here is linear: each starts with a literal or a class
-- its run cannot repeat, so a failed start costs O(1) and a match is never retried.
local function assignment_rules()
  local rules = {}
  for _, name in ipairs(TEXT_NAMES) do
    local key = any_case(name) .. "[\"']?%s*[=:]%s*"
    -- a quoted value up to its closing quote (an escaped quote does not end it); linear too: the
    -- next key's opening quote follows = : or a space, so it closes an unterminated value before it
    rules[#rules + 1] = { "(" .. key .. ")\"(.-[^\\])\"", "%1\"[redacted]\"", name }
    if name == "authorization" then
      -- "Authorization: Digest abc": the scheme stays, whatever credential follows is masked
      rules[#rules + 1] = { "(" .. key .. "%a+%s+)[^%s&,;\"'%[%]]+", "%1[credentials]", name }
    end
    -- an unquoted (or unterminated) value up to a separator; a Cookie header's value is every
    -- cookie to the end of the line ("sid=1; csrf=2")
    local value = name == "cookie" and "[^\r\n\"'%[%]]+" or "[^%s&,;\"'%[%]]+"
    rules[#rules + 1] = { "(" .. key .. "[\"']?)(" .. value .. ")", unquoted, name }
  end
  return rules
end

-- E-mail addresses: a run of local-part characters, "@", then a dotted domain ending in two letters.
-- As one gsub pattern ("[%w%._%%%+%-]+@...") Lua retries the run from each of its characters, each
-- retry scanning to the run's end: quadratic, seconds for one 32 KB spaceless token on the thread
-- that reads every log on the node. The same matches (leftmost first, as gsub finds them) from each
-- "@" instead: the local part is the run just before it, never reaching back past the previous
-- match; "@" is in neither character class, so every character is looked at a bounded number of
-- times.
local LOCAL_PART = {}
for byte = 0, 255 do LOCAL_PART[byte] = string.char(byte):find("^[%w%._%%%+%-]$") ~= nil end
local DOMAIN = "^[%w%-]+%.[%w%.%-]*%a%a"

local function emails(value)
  local at = value:find("@", 1, true)
  local parts, pos, count = {}, 1, 0
  while at do
    local start = at
    while start > pos and LOCAL_PART[value:byte(start - 1)] do start = start - 1 end
    local _, finish = value:find(DOMAIN, at + 1)
    local matched = start < at and finish ~= nil
    if matched then
      parts[#parts + 1] = value:sub(pos, start - 1)
      parts[#parts + 1] = "[email]"
      pos, count = finish + 1, count + 1
    end
    at = value:find("@", matched and pos or at + 1, true)
  end
  if count == 0 then return value, 0 end
  parts[#parts + 1] = value:sub(pos)
  return table.concat(parts), count
end

-- Numbers: SSNs, card and phone numbers consist only of digits, white space and - . ( ) +, and each
-- holds at least 9 digits, or 8 after a "+" (phone() counts 8 to 15). So the number rules run only
-- on a maximal run of those characters that holds that many, found by one pass over the bytes (a loop LuaJIT compiles: a pattern pass
-- would cost as much as the rest of the scrubber); a timestamp's "18:05:46" or a status "200 5123"
-- costs no rule pass. A run is bounded by characters outside the set - non-digits, like the
-- string's ends - so the %f frontiers decide inside the run exactly as in the whole line.
-- { pattern, replacement, digits a match holds at least, a character it needs }: a run with fewer
-- digits, or without that character, cannot match (replacements add neither)
local NUMBER_RULES = {
  { "%f[%d]%d%d%d%-%d%d%-%d%d%d%d%f[%D]", "[ssn]", 9, "-" },
  { "%f[%d]%d[%d %-]+%d%f[%D]", card, 13 },
  { "%+%d[%d %-%.%(%)]+%d%f[%D]", phone, 8, "+" },
  { "%(%d%d%d%)%s?%d%d%d[%s%.%-]%d%d%d%d%f[%D]", "[phone]", 10, "(" },
  { "%f[%d]%d%d%d[%s%.%-]%d%d%d[%s%.%-]%d%d%d%d%f[%D]", "[phone]", 10 },
}
-- per byte value + 1: 2 a digit, 3 a "+", 1 another character of a number run, 0 outside (numbers only,
-- no nil: LuaJIT keeps the loop compiled when a variable never changes type)
local NUMBER_CHAR = {}
for byte = 0, 255 do
  local c = string.char(byte)
  NUMBER_CHAR[byte + 1] = c:find("^%d$") and 2 or c == "+" and 3 or c:find("^[%s%-%.%(%)]$") and 1 or 0
end

local function number_run(run, digits)
  local changed = false
  for _, rule in ipairs(NUMBER_RULES) do
    if digits >= rule[3] and (not rule[4] or run:find(rule[4], 1, true)) then
      local result, n = run:gsub(rule[1], rule[2])
      if n > 0 and result ~= run then run, changed = result, true end
    end
  end
  return changed and run or nil
end

local function numbers(value)
  local parts, pos, count = nil, 1, 0
  local start, digits, plus, length = 0, 0, 0, #value
  local byte = string.byte
  for i = 1, length + 1 do
    local kind = i <= length and NUMBER_CHAR[byte(value, i) + 1] or 0 -- past the end: outside
    if kind > 0 then
      if start == 0 then start, digits, plus = i, 0, 0 end
      if kind == 2 then digits = digits + 1 elseif kind == 3 then plus = 1 end
    elseif start > 0 then
      if digits >= 9 or (digits == 8 and plus == 1) then
        local scrubbed = number_run(value:sub(start, i - 1), digits)
        if scrubbed then
          parts = parts or {}
          parts[#parts + 1] = value:sub(pos, start - 1)
          parts[#parts + 1] = scrubbed
          pos, count = i, count + 1
        end
      end
      start = 0
    end
  end
  if not parts then return value, 0 end
  parts[#parts + 1] = value:sub(pos)
  return table.concat(parts), count
end

-- Order matters: tokens and keys before the digit patterns that could match inside them.
local RULES = {
  { "[Bb][Ee][Aa][Rr][Ee][Rr]%s+[%w%-%._~%+/]+=*", "Bearer [token]", "bearer" },
  { "(%f[%w][Bb][Aa][Ss][Ii][Cc]%s+)([%w%+/]+=*)", basic, "basic" },
  { "(aws_secret_access_key[\"']?%s*[=:]%s*[\"']?)[%w/%+]+", "%1[aws-secret]", "aws_secret_access_key", true },
  { "%f[%w]AKIA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]%f[%W]", "[aws-key]", "AKIA", true },
  { "%f[%w]ASIA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]%f[%W]", "[aws-key]", "ASIA", true },
  { emails, nil, "@", true },
  { numbers },
}
for _, rule in ipairs(assignment_rules()) do RULES[#RULES + 1] = rule end

-- rule[3] is the needle (nil: always run), rule[4] true when it is case-sensitive; a rule whose
-- pattern is a function scans the value itself.
local function scrub_string(value)
  local changed, lower = false, nil
  for _, rule in ipairs(RULES) do
    local needle = rule[3]
    local present = true
    if needle then
      if rule[4] then
        present = value:find(needle, 1, true) ~= nil
      else
        lower = lower or value:lower()
        present = lower:find(needle, 1, true) ~= nil
      end
    end
    if present then
      local result, count
      if type(rule[1]) == "function" then result, count = rule[1](value) else result, count = value:gsub(rule[1], rule[2]) end
      if count > 0 and result ~= value then value, changed, lower = result, true, nil end
    end
  end
  return value, changed
end

-- "user.email" -> "email". Not name:match("[^%.]+$"): that retries from every character of a long
-- dotless run before a dot (quadratic); anchored, ".*" backtracks once from the end to the last dot.
local function last_segment(name)
  return name:match("^.*%.(.*)$") or name
end

local function scrub_table(node, path)
  local changed = false
  for key, value in pairs(node) do
    local name = type(key) == "string" and key:lower() or nil
    local full = name and (path and (path .. "." .. name) or name) or path
    if name and (DROP_NAMES[name] or DROP_PATHS[full] or DROP_NAMES[last_segment(name)]) then
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
