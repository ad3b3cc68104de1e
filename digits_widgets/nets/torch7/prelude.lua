-- The Torch7 world a DIGITS network sees, in plain Lua: the nn / cudnn / cunn / inn / torch namespaces.
-- Each constructor only records its type, its arguments and the user's line; Python (namespace.py) turns the
-- finished tree into PyTorch modules. Called with: the list of module names, the list of criterion names,
-- and a print function (Lua's print goes to the log, not to the notebook).
local module_names, criterion_names, log_print = ...

local Object = {}
Object.__index = Object
local next_id = 0

local function user_line()
    -- level 1 is this function, 2 the constructor, 3 the code that called nn.X(...)
    local info = debug.getinfo(3, 'Sl')
    if info then return info.currentline, info.short_src end
    return 0, '?'
end

local function new(ns, kind, role, ...)
    next_id = next_id + 1
    local line, src = user_line()
    local obj = {__id = next_id, __ns = ns, __type = kind, __role = role,
                 __args = {n = select('#', ...), ...}, __line = line, __src = src, modules = {}}
    return setmetatable(obj, Object)
end

function Object:add(m, index)
    if type(m) ~= 'table' or getmetatable(m) ~= Object then
        error(self.__ns .. '.' .. self.__type .. ':add() expects a module, got ' .. type(m), 2)
    end
    -- a number is a position (Sequential:add(m, i)); DataParallelTable:add(m, gpus) gives a table of GPUs
    if type(index) == 'number' then table.insert(self.modules, index, m) else table.insert(self.modules, m) end
    return self
end
function Object:insert(m, index) return self:add(m, index or #self.modules + 1) end
function Object:remove(index)
    return table.remove(self.modules, index or #self.modules)
end
function Object:get(i) return self.modules[i] end
function Object:size() return #self.modules end
function Object:ceil() self.ceil_mode = true return self end
function Object:floor() self.ceil_mode = false return self end
function Object:setNumInputDims(n) self.numInputDims = n return self end
-- devices and modes are the trainer's business here: these return the module, as Torch7's did
function Object:cuda() return self end
function Object:float() return self end
function Object:double() return self end
function Object:type() return self end
function Object:training() return self end
function Object:evaluate() return self end
function Object:reset() return self end
function Object:threads() return self end   -- DataParallelTable:threads(initFunction)
function Object:__tostring() return self.__ns .. '.' .. self.__type end
Object.__tostring = Object.__tostring

local function namespace(ns)
    local t = {}
    for _, kind in ipairs(module_names) do
        t[kind] = function(...) return new(ns, kind, 'module', ...) end
    end
    for _, kind in ipairs(criterion_names) do
        t[kind] = function(...) return new(ns, kind, 'criterion', ...) end
    end
    return setmetatable(t, {__index = function(_, key)
        error("unknown " .. ns .. " module '" .. ns .. "." .. tostring(key) .. "': digits_widgets builds Torch7 "
              .. "networks as PyTorch modules and knows " .. table.concat(module_names, ', ') .. ' and the '
              .. 'criteria ' .. table.concat(criterion_names, ', '), 2)
    end})
end

nn = namespace('nn')
cudnn = namespace('cudnn')
cunn = nn
inn = namespace('inn')

-- A small stand-in for torch.Tensor, enough for the shapes DIGITS passes (params.inputShape) and builds.
local Tensor = {}
Tensor.__index = Tensor
local function tensor(values) return setmetatable(values, Tensor) end
function Tensor:size(i) if i then return self[i] end return self end
function Tensor:nElement() local n = 1 for _, v in ipairs(self) do n = n * v end return n end
function Tensor:dim() return 1 end
function Tensor:nDimension() return 1 end
function Tensor:totable() local t = {} for i, v in ipairs(self) do t[i] = v end return t end
function Tensor:apply(fn)
    for i, v in ipairs(self) do local r = fn(v) if r ~= nil then self[i] = r end end
    return self
end
function Tensor:__tostring() return 'torch.Tensor{' .. table.concat(self, ', ') .. '}' end
Tensor.__tostring = Tensor.__tostring

torch = {
    Tensor = function(values)
        if type(values) == 'table' then return tensor(values) end
        local t = {} for i = 1, values or 0 do t[i] = 0 end return tensor(t)
    end,
    range = function(a, b, step)
        local t = {} for v = a, b, step or 1 do t[#t + 1] = v end return tensor(t)
    end,
    typename = function(x)
        if getmetatable(x) == Tensor then return 'torch.FloatTensor' end
        if getmetatable(x) == Object then return x.__ns .. '.' .. x.__type end
        return nil
    end,
    setdefaulttensortype = function() end,
    manualSeed = function() end,
}
torch.LongStorage = torch.Tensor
torch.FloatTensor = torch.Tensor
torch.type = torch.typename
cutorch = {getDeviceCount = function() return 0 end}

local provided = {nn = nn, cunn = nn, cudnn = cudnn, inn = inn, torch = torch, cutorch = cutorch}
function require(name)
    local found = provided[name]
    if found == nil then
        error("module '" .. tostring(name) .. "' not found: digits_widgets provides nn, cunn, cudnn, inn, torch "
              .. "and cutorch to Torch7 networks", 2)
    end
    return found
end

print = function(...)
    local parts = {}
    for i = 1, select('#', ...) do parts[i] = tostring((select(i, ...))) end
    log_print(table.concat(parts, '\t'))
end

-- what Python asks of the Lua side
return {
    tensor = tensor,
    is_object = function(x) return type(x) == 'table' and getmetatable(x) == Object end,
    is_tensor = function(x) return type(x) == 'table' and getmetatable(x) == Tensor end,
}
