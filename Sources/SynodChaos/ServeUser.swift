#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The account `synod chaos --serve-user` runs the servers as, looked up in the user database.
struct ServeUser {
    var name: String
    var uid: uid_t
    var gid: gid_t

    init(name: String) throws {
        guard let entry = getpwnam(name) else { throw ChaosRunError("--serve-user: no user named '\(name)'") }
        self.name = name
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
        guard uid != 0 else { throw ChaosRunError("--serve-user: '\(name)' is root; name an unprivileged user") }
        guard getuid() == 0 else { throw ChaosRunError("--serve-user needs root (it switches to \(name) with setpriv)") }
        guard FileManager.default.isExecutableFile(atPath: Self.setpriv) else {
            throw ChaosRunError("--serve-user needs \(Self.setpriv) (util-linux)")
        }
    }

    static let setpriv = "/usr/bin/setpriv"

    /// The argv prefix that starts a program as this user, with no supplementary groups.
    var setprivPrefix: [String] {
        [Self.setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups"]
    }
}
