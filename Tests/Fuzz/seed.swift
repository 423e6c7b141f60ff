// Fuzz target: the catalog's seed document parser (SeedDocument.swift and Validation.swift
// from STBCatalog, compiled into this harness with the modules they import). Any text:
// parsing either throws every problem as a non-empty `path: problem` sentence, or gives a
// document whose keys are valid and whose option keys are unique; nothing traps.
import STBJSON
import STBMessages
import STBOptionValues

// What the two files take from the rest of STBCatalog.
typealias Module = Stb_Catalog_V1_Module
typealias Group = Stb_Catalog_V1_Group
typealias Option = Stb_Catalog_V1_Option
typealias State = Stb_Catalog_V1_State
typealias Transition = Stb_Catalog_V1_Transition
enum SeedImporter {}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSeedDocument(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let document = try SeedImporter.parse(text)
        precondition(document.modules.allSatisfy { isValidKey($0.key) }, "a module key is invalid")
        precondition(document.options.allSatisfy { isValidKey($0.key) }, "an option key is invalid")
        precondition(Set(document.options.map(\.key)).count == document.options.count, "option keys repeat")
    } catch {
        precondition(!error.problems.isEmpty, "refused without a problem")
        precondition(error.problems.allSatisfy { !$0.isEmpty }, "an empty problem")
    }
    return 0
}
