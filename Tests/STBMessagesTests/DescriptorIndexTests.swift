import Foundation
import STBMessages
import Testing

@Suite("Embedded descriptors and their index")
struct DescriptorIndexTests {
    private let index = ProtoDescriptorIndex.generated

    @Test("every file under Protos/ is embedded, each after the files it imports")
    func everyProtoFile() throws {
        let protos = try #require(FileManager.default.enumerator(atPath: repositoryRoot.appendingPathComponent("Protos").path))
            .compactMap { $0 as? String }
            .filter { $0.hasSuffix(".proto") }
        #expect(protos.count >= 8)
        for name in protos {
            #expect(index.file(named: name) != nil, "\(name) is not embedded")
        }
        var earlier = Set<String>()
        for file in index.files {
            for dependency in file.dependencies {
                #expect(earlier.contains(dependency), "\(file.name) comes before its import \(dependency)")
            }
            earlier.insert(file.name)
        }
    }

    @Test("each descriptor is a FileDescriptorProto that starts with its name (field 1)")
    func serializedNames() {
        for file in index.files {
            let name = Array(file.name.utf8)
            #expect(file.serializedBytes.count > name.count + 2)
            #expect(Array(file.serializedBytes.prefix(2 + name.count)) == [0x0A, UInt8(name.count)] + name, "\(file.name)")
        }
    }

    @Test(
        "symbols find the file defining them",
        arguments: [
            ("stb.catalog.v1.Catalog", "stb/catalog/v1/catalog.proto"),
            ("stb.catalog.v1.Catalog.GetConfig", "stb/catalog/v1/catalog.proto"),
            ("stb.rules.v1.Rules", "stb/rules/v1/rules.proto"),
            ("stb.testing.v1.Echo.Update", "stb/testing/v1/echo.proto"),
            ("stb.testing.v1.EchoRequest", "stb/testing/v1/echo.proto"),
            (".stb.testing.v1.EchoRequest", "stb/testing/v1/echo.proto"),
            ("stb.testing.v1.EchoRequest.text", "stb/testing/v1/echo.proto"),
            ("stb.testing.v1.AllKinds.Mode", "stb/testing/v1/all_kinds.proto"),
            ("stb.testing.v1.AllKinds.MODE_SAFE", "stb/testing/v1/all_kinds.proto"),
            ("stb.testing.v1.Color", "stb/testing/v1/all_kinds.proto"),
            ("stb.testing.v1.COLOR_BLUE", "stb/testing/v1/all_kinds.proto"),
            ("stb.testing.v1.AllKinds.choice", "stb/testing/v1/all_kinds.proto"),
            ("grpc.health.v1.HealthListResponse.StatusesEntry", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
            ("grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"),
            ("grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo", "grpc/reflection/v1alpha/reflection.proto"),
        ])
    func symbols(_ symbol: String, _ file: String) {
        #expect(index.file(containingSymbol: symbol)?.name == file)
    }

    @Test("unknown symbols, packages and partial names find nothing", arguments: [
        "", ".", "stb", "stb.catalog.v1", "stb.catalog.v1.Nope", "Catalog", "stb.catalog.v1.Catalog.", "stb.catalog.v1.Catalog/GetConfig",
    ])
    func unknownSymbols(_ symbol: String) {
        #expect(index.file(containingSymbol: symbol) == nil)
    }

    @Test("a file's dependencies: itself first, then what it imports")
    func catalogDependencies() throws {
        let catalog = try #require(index.file(named: "stb/catalog/v1/catalog.proto"))
        #expect(catalog.dependencies == ["stb/common/v1/common.proto"])
        #expect(index.withDependencies(catalog).map(\.name) == ["stb/catalog/v1/catalog.proto", "stb/common/v1/common.proto"])
        let echo = try #require(index.file(named: "stb/testing/v1/echo.proto"))
        #expect(index.withDependencies(echo).map(\.name) == ["stb/testing/v1/echo.proto"])
        #expect(index.file(named: "stb/catalog/v1/nope.proto") == nil)
    }

    @Test("the dependency closure is transitive, lists each file once and skips missing imports")
    func closure() {
        // a imports b and c; both import d; d imports e, which is not in the index.
        let files = [
            file("d.proto", ["e.proto"]),
            file("c.proto", ["d.proto"]),
            file("b.proto", ["d.proto"]),
            file("a.proto", ["b.proto", "c.proto"]),
        ]
        let index = ProtoDescriptorIndex(files: files)
        #expect(index.withDependencies(files[3]).map(\.name) == ["a.proto", "b.proto", "c.proto", "d.proto"])
        #expect(index.withDependencies(files[1]).map(\.name) == ["c.proto", "d.proto"])
        // A cycle (not valid protobuf) still ends.
        let cyclic = ProtoDescriptorIndex(files: [file("x.proto", ["y.proto"]), file("y.proto", ["x.proto"])])
        #expect(cyclic.withDependencies(cyclic.files[0]).map(\.name) == ["x.proto", "y.proto"])
    }

    @Test("extension numbers: by message type, none for our proto3 messages, nil for unknown types")
    func extensions() {
        #expect(index.extensionNumbers(ofType: "stb.testing.v1.EchoRequest") == [])
        #expect(index.extensionNumbers(ofType: ".stb.testing.v1.EchoRequest") == [])
        #expect(index.extensionNumbers(ofType: "stb.testing.v1.Echo") == nil)  // a service
        #expect(index.extensionNumbers(ofType: "stb.testing.v1.Nope") == nil)
        #expect(index.file(containingExtension: "stb.testing.v1.EchoRequest", number: 100) == nil)

        let base = ProtoFileDescriptor(
            name: "base.proto", dependencies: [], messageTypes: ["p.Base"], otherSymbols: [], extensions: [], serializedBytes: [1])
        let more = ProtoFileDescriptor(
            name: "more.proto", dependencies: ["base.proto"], messageTypes: [], otherSymbols: ["p.tag", "p.size"],
            extensions: [.init(extendee: "p.Base", number: 200), .init(extendee: "p.Base", number: 100)], serializedBytes: [2])
        let custom = ProtoDescriptorIndex(files: [base, more])
        #expect(custom.extensionNumbers(ofType: "p.Base") == [100, 200])
        #expect(custom.file(containingExtension: "p.Base", number: 200)?.name == "more.proto")
        #expect(custom.file(containingExtension: ".p.Base", number: 100)?.name == "more.proto")
        #expect(custom.file(containingExtension: "p.Base", number: 300) == nil)
        #expect(custom.file(containingSymbol: "p.tag")?.name == "more.proto")
    }

    @Test("embedded base64 decodes with line breaks")
    func base64() {
        let descriptor = ProtoFileDescriptor(
            name: "x.proto", dependencies: [], messageTypes: [], otherSymbols: [], extensions: [],
            base64: "Cgd4\nLnBy\nb3Rv")
        #expect(descriptor.serializedBytes == [0x0A, 0x07] + Array("x.proto".utf8))
    }

    private func file(_ name: String, _ dependencies: [String]) -> ProtoFileDescriptor {
        ProtoFileDescriptor(
            name: name, dependencies: dependencies, messageTypes: [], otherSymbols: [], extensions: [],
            serializedBytes: Array(name.utf8))
    }
}
