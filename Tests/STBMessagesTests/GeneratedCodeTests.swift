import Testing

@Suite("Generated message code")
struct GeneratedCodeTests {
    @Test("committed protoc-c output and Swift glue match Protos/")
    func generatedCodeIsUpToDate() throws {
        let output = try runTool(["bash", "scripts/gen-messages", "--check"])
        #expect(output.status == 0, "scripts/gen-messages --check failed:\n\(output.stderr)")
        #expect(output.stdout.contains("up to date"))
    }
}
