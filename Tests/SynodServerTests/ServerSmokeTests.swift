import XCTest
@testable import SynodServer

final class ServerSmokeTests: XCTestCase {}
