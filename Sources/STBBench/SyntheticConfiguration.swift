import STBMessages

// The synthetic, deterministic configuration the rules and project benchmarks share
// (fixed seed): a 10,000-option catalog and 5,000 rules, and two selections.
//   catalog  20 modules × 10 groups × 50 options = 10,000 options, as a
//            Stb_Catalog_V1_GetConfigResponse: 40% boolean, 30% integer (0…100,000), 20%
//            enum (v0…v4), 10% string; about half included by default.
//   rules    5,000: 40% requires (1-3 targets, always to a higher option index: acyclic),
//            20% forbidden (1-2 targets), 30% validation (numeric bounds, comparisons between
//            two integer options, ranges, enum membership; 2% of them global "*"),
//            10% choice (2-4 members, 70% optional); 80% error / 20% warning severity.
//            Chosen so that the defaults satisfy about 90% of them (a mostly valid selection).
//   full     an EvaluateRequest listing all 10,000 options explicitly (included flag on each,
//            0.5% flipped from the default; value overrides on ~10% of integers and ~5% of the rest).
//   sparse   an EvaluateRequest with 100 explicit choices (flips and 30 overrides), rest defaults.

/// A small, fast, deterministic random number generator (SplitMix64).
public struct SplitMix: Sendable {
    public var state: UInt64

    public init(state: UInt64) {
        self.state = state
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound.
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    /// True `percent` times in 100.
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

func padded(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

/// The synthetic catalog's shape and the number of rules.
public let moduleCount = 20, groupCount = 10, optionsPerGroup = 50
public let optionCount = moduleCount * groupCount * optionsPerGroup
public let ruleCount = 5_000

/// One synthetic catalog option, as the generators need it.
public struct SyntheticOption: Sendable {
    public var key: String
    public var type: Stb_Catalog_V1_OptionType
    public var defaultText: String
    public var intDefault: Int
    public var included: Bool
}

/// One synthetic rule, as the rules service stores it.
public struct SyntheticRule: Sendable {
    public var key: String
    public var subject: String
    public var type: Stb_Rules_V1_RuleType
    public var payload: String
    public var severity: Stb_Rules_V1_Severity
}

/// The synthetic catalog (`options`, and as a GetConfig reply), rules and selections.
public struct Synthetic: Sendable {
    public var options: [SyntheticOption] = []
    public var config = Stb_Catalog_V1_GetConfigResponse()
    public var rules: [SyntheticRule] = []
    public var full = Stb_Rules_V1_EvaluateRequest()
    public var sparse = Stb_Rules_V1_EvaluateRequest()
}

/// The synthetic data; the same on every call.
public func makeSynthetic() -> Synthetic {
    var rng = SplitMix(state: 20_240_601)
    var data = Synthetic()
    data.config.revision = 1
    data.config.cursor = "bench"
    for m in 0..<moduleCount {
        var entry = Stb_Catalog_V1_ConfigModule()
        var module = Stb_Catalog_V1_Module()
        module.key = "m\(padded(m))"
        module.name = "Module \(m)"
        module.active = true
        module.initialState = "idle"
        entry.module = module
        for g in 0..<groupCount {
            var group = Stb_Catalog_V1_ConfigGroup()
            var info = Stb_Catalog_V1_Group()
            info.moduleKey = module.key
            info.key = "g\(padded(g))"
            info.name = "Group \(g)"
            info.position = Int32(g)
            group.group = info
            for o in 0..<optionsPerGroup {
                let index = data.options.count
                var option = Stb_Catalog_V1_Option()
                option.moduleKey = module.key
                option.groupKey = info.key
                option.key = "m\(padded(m))_g\(padded(g))_o\(padded(o))"
                option.name = "Option \(index)"
                option.editable = true
                var intDefault = 0
                switch o % 10 {
                case 0...3:
                    option.type = .boolean
                    option.defaultValue = rng.chance(50) ? "true" : "false"
                case 4...6:
                    option.type = .integer
                    intDefault = rng.below(10_000)
                    option.defaultValue = "\(intDefault)"
                    option.metaJson = #"{"min":0,"max":100000}"#
                case 7, 8:
                    option.type = .enum
                    option.defaultValue = "v\(rng.below(5))"
                    option.metaJson = #"{"values":["v0","v1","v2","v3","v4"]}"#
                default:
                    option.type = .string
                    option.defaultValue = "s\(index)"
                }
                option.includedByDefault = rng.chance(50)
                data.options.append(SyntheticOption(
                    key: option.key, type: option.type, defaultText: option.defaultValue, intDefault: intDefault,
                    included: option.includedByDefault))
                group.options.append(option)
            }
            entry.groups.append(group)
        }
        data.config.modules.append(entry)
    }

    let options = data.options
    let integers = options.indices.filter { options[$0].type == .integer }
    let includedIntegers = integers.filter { options[$0].included }
    let includedEnums = options.indices.filter { options[$0].type == .enum && options[$0].included }
    func key(_ index: Int) -> String { options[index].key }
    func quotedList(_ indices: [Int]) -> String { "[" + indices.map { "\"\(key($0))\"" }.joined(separator: ",") + "]" }
    /// From a random start, the next option (scanning forward, wrapping within `range`) whose
    /// default inclusion is `included`.
    func pick(_ range: Range<Int>, included: Bool, avoid: Set<Int>, _ rng: inout SplitMix) -> Int {
        var index = range.lowerBound + rng.below(range.count)
        for _ in 0..<range.count {
            if options[index].included == included && !avoid.contains(index) { return index }
            index += 1
            if index == range.upperBound { index = range.lowerBound }
        }
        return range.lowerBound + rng.below(range.count)
    }
    func pickAny(_ range: Range<Int>, avoid: Set<Int>, _ rng: inout SplitMix) -> Int {
        while true {
            let index = range.lowerBound + rng.below(range.count)
            if !avoid.contains(index) { return index }
        }
    }

    for n in 0..<ruleCount {
        var rule = SyntheticRule(key: "r\(n)", subject: "", type: .requires, payload: "", severity: rng.chance(80) ? .error : .warning)
        switch n % 10 {
        case 0...3:
            // requires: targets above the subject (acyclic), 90% included by default.
            let subject = rng.below(optionCount - 200)
            var targets: [Int] = []
            for _ in 0..<(1 + rng.below(3)) {
                let range = (subject + 1)..<min(optionCount, subject + 1 + 2_000)
                targets.append(rng.chance(90)
                    ? pick(range, included: true, avoid: Set(targets), &rng)
                    : pickAny(range, avoid: Set(targets), &rng))
            }
            rule.subject = key(subject)
            rule.type = .requires
            rule.payload = #"{"requires":\#(quotedList(targets))}"#
        case 4, 5:
            let subject = rng.below(optionCount)
            var targets: [Int] = []
            for _ in 0..<(1 + rng.below(2)) {
                var avoid = Set(targets)
                avoid.insert(subject)
                targets.append(rng.chance(90)
                    ? pick(0..<optionCount, included: false, avoid: avoid, &rng)
                    : pickAny(0..<optionCount, avoid: avoid, &rng))
            }
            rule.subject = key(subject)
            rule.type = .forbidden
            rule.payload = #"{"forbidden":\#(quotedList(targets))}"#
        case 6...8:
            rule.type = .validation
            rule.subject = rng.chance(2) ? "*" : key(rng.below(optionCount))
            let logic: String
            switch rng.below(4) {
            case 0:
                let x = integers[rng.below(integers.count)]
                let bound = rng.chance(90) ? options[x].intDefault + rng.below(5_000) : options[x].intDefault - 1
                logic = #"{"<=":[{"var":"\#(key(x))"},\#(bound)]}"#
            case 1:
                var a = integers[rng.below(integers.count)]
                var b = integers[rng.below(integers.count)]
                if a == b { b = integers[(integers.firstIndex(of: a)! + 1) % integers.count] }
                if options[a].intDefault > options[b].intDefault { swap(&a, &b) }
                logic = #"{"<=":[{"var":"\#(key(a))"},{"var":"\#(key(b))"}]}"#
            case 2:
                let x = includedIntegers[rng.below(includedIntegers.count)]
                logic = #"{"and":[{">=":[{"var":"\#(key(x))"},0]},{"<=":[{"var":"\#(key(x))"},100000]}]}"#
            default:
                let e = includedEnums[rng.below(includedEnums.count)]
                let current = Int(options[e].defaultText.dropFirst())!
                var dropped = rng.below(5)
                if dropped == current && rng.chance(90) { dropped = (dropped + 1) % 5 }
                let allowed = (0..<5).filter { $0 != dropped }.map { "\"v\($0)\"" }.joined(separator: ",")
                logic = #"{"in":[{"var":"\#(key(e))"},[\#(allowed)]]}"#
            }
            rule.payload = #"{"logic":\#(logic)}"#
        default:
            rule.type = .choice
            rule.subject = "choice_\(n)"
            let optional = rng.chance(70)
            let size = 2 + rng.below(3)
            var members: [Int] = []
            // Optional: at most one included; exactly one otherwise (90% of the time by default).
            let wantIncluded = optional ? (rng.chance(50) ? 1 : 0) : 1
            for index in 0..<size {
                let included = index < wantIncluded ? true : !rng.chance(90) && index == size - 1
                members.append(pick(0..<optionCount, included: included, avoid: Set(members), &rng))
            }
            rule.payload = #"{"choice":\#(quotedList(members)),"optional":\#(optional)}"#
        }
        data.rules.append(rule)
    }

    // Selections.
    func override(_ index: Int, _ rng: inout SplitMix) -> String {
        switch options[index].type {
        case .boolean: return rng.chance(50) ? "true" : "false"
        case .integer: return "\(max(0, options[index].intDefault + rng.below(2_000) - 1_000))"
        case .enum: return "\"v\(rng.below(5))\""
        default: return "\"x\(index)\""
        }
    }
    for index in 0..<optionCount {
        var choice = Stb_Rules_V1_OptionChoice()
        choice.key = key(index)
        choice.included = rng.below(1000) < 5 ? !options[index].included : options[index].included
        let overridePercent = options[index].type == .integer ? 10 : 5
        if rng.chance(overridePercent) { choice.valueJson = override(index, &rng) }
        data.full.options.append(choice)
    }
    var chosen = Set<Int>()
    while chosen.count < 100 {
        let index = rng.below(optionCount)
        guard chosen.insert(index).inserted else { continue }
        var choice = Stb_Rules_V1_OptionChoice()
        choice.key = key(index)
        if chosen.count <= 70 {
            choice.included = rng.chance(80) ? !options[index].included : options[index].included
        } else {
            choice.included = true
            choice.valueJson = override(index, &rng)
        }
        data.sparse.options.append(choice)
    }
    return data
}
