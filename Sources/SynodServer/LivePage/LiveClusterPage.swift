/// The live cluster page (`GET /ui`): one self-contained HTML document.
public enum LiveClusterPage {
    public static let html: String = "<!doctype html><title>placeholder</title>"
}
