import Foundation
import SynodSim

/// The guided tour's pages (`synod sim --tour`): one replay page per `SimTour` scenario and
/// an index linking them. Each call runs the scenario's simulation (deterministic: the same
/// page every time), which takes a moment; a server may cache the result. Pages link to each
/// other relatively (`index.html`, `<name>.html`), so they work from a directory of files or
/// served side by side (say at `/ui/tour/`).
enum SimTourPages {
    /// The page of the scenario `name`, or nil when there is none.
    static func tourPage(name: String) throws -> String? {
        guard let tour = SimTour.named(name) else { return nil }
        guard let replay = Simulator.run(tour.options).replay else { return nil }
        return try SimReplayPage.html(replay, tour: tour)
    }

    /// The index: every scenario with its title and description, linking its page.
    static func tourIndex() -> String {
        let items = SimTour.all.map { tour in
            """
            <li><h2><a href="\(SimReplayPage.escape(tour.name)).html">\(SimReplayPage.escape(tour.title))</a></h2>
            <p>\(SimReplayPage.escape(tour.description))</p>
            <p class="how"><code>synod sim --tour \(SimReplayPage.escape(tour.name)) --html \(SimReplayPage.escape(tour.name)).html</code> · \(tour.options.nodes) nodes, seed \(tour.options.seed)</p></li>
            """
        }.joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Synod: a guided tour of Multi-Paxos</title>
            <style>
              body { margin: 0 auto; max-width: 900px; padding: 16px; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #16181d; background: #fbfbf8; }
              h1 { font-size: 24px; } h2 { font-size: 18px; margin: 0 0 4px; }
              ol { padding-left: 22px; } li { margin: 0 0 18px; }
              a { color: #0b4fb3; } .how { color: #4a505c; font-size: 13px; margin: 0; }
              code { font-size: 13px; }
            </style>
            </head>
            <body>
            <h1>A guided tour of Multi-Paxos</h1>
            <p>Each page replays one deterministic simulated run of Synod, step by step: the nodes, the messages between them, each node's log, and a caption that says in plain words what the step does and why. The runs were chosen because each shows one thing clearly; the project's tests check that it still does.</p>
            <ol id="scenarios">
            \(items)
            </ol>
            </body>
            </html>
            """
    }
}
