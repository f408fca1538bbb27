package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// pageTile is a search result tile as the page shows it.
type pageTile struct {
	Camera string  `json:"camera"`
	Kind   string  `json:"kind"` // probability, or similarity for "frames like this"
	Score  float64 `json:"score"`
	ID     string  `json:"id"`
	Loaded bool    `json:"loaded"` // its thumbnail was fetched and decoded
}

// TestSearchPage drives the page's frame-store parts in Chromium, on the
// demo's two cameras (searchConfig: the garden shows yellow, the porch
// never does): "something yellow" typed into the search box finds the
// garden's yellow first and nothing on the porch; its tile opens the
// frame view with the crop and the garden's label; "✗ it is not" marks
// the stored frame; "frames like this" finds it at similarity ~1; "try a
// label" on the garden previews yellow (chart, events, best frames),
// re-runs when the threshold changes, adds the label, shows a refused
// second add inline, and removes it again; and the address
// /?q=…&try=garden opens the same state (the docs' screenshot).
func TestSearchPage(t *testing.T) {
	testenv.Integration(t)
	r := startDaemon(t, searchConfig(t, t.TempDir()), nil)
	// Both videos played through once: 6 s at 4 fps (as TestSearch); and
	// the store holds the 10 garden frames the preview's chart is checked
	// for (one a second, and each change: it takes longer than a loop).
	gardenFrames := func() int {
		var p httpapi.Preview
		if code, body := r.post("/api/preview", `{"camera": "garden", "prompts": ["yellow"], "since": "1h"}`, "application/json", ""); code == http.StatusOK {
			json.Unmarshal(body, &p)
		}
		return len(p.Frames)
	}
	testenv.WaitFor(t, 60*time.Second, func() bool {
		return r.camera("garden").FramesScored+r.camera("garden").FramesSkipped >= 28 &&
			r.camera("porch").FramesScored+r.camera("porch").FramesSkipped >= 28 && gardenFrames() >= 10
	}, "both cameras to play their video once and 10 stored garden frames")

	br := testenv.StartBrowser(t, 1200, 900)
	br.Navigate(r.base + "/")
	// is polls a condition on the page; one that throws (the page not
	// loaded yet, an element not there yet) is false.
	show := func(expr string) string {
		return br.EvalString("(() => { try { return String(" + expr + ") } catch (e) { return String(e) } })()")
	}
	is := func(expr string) func() bool { return func() bool { return show(expr) == "true" } }
	// waitPage is WaitFor that says, on failure, what the page shows.
	waitPage := func(timeout time.Duration, cond func() bool, what, shows string) {
		t.Helper()
		if !testenv.Eventually(timeout, cond) {
			t.Fatalf("timed out after %s waiting for %s; the page shows %q", timeout, what, show(shows))
		}
	}
	testenv.WaitFor(t, 20*time.Second, is(`!document.getElementById("search").hidden`), "the search box (the store is on)")
	br.Eval(`(() => { document.getElementById("q").value = "something yellow";
		document.getElementById("search").dispatchEvent(new Event("submit", {cancelable: true})); })()`)
	tiles := func() []pageTile {
		var ts []pageTile
		json.Unmarshal(br.Eval(`[...document.querySelectorAll("#results .tile")].map(t => ({camera: t.dataset.camera, kind: t.dataset.kind,
			score: +t.dataset.score, id: t.dataset.id, loaded: t.querySelector("img").complete && t.querySelector("img").naturalWidth > 0}))`), &ts)
		return ts
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return len(tiles()) > 0 }, "search results")
	ts := tiles()
	if ts[0].Camera != "garden" || ts[0].Kind != "probability" || ts[0].Score < 0.5 {
		t.Errorf("first tile %+v, want the garden's yellow at probability 0.5 or more", ts[0])
	}
	for _, tl := range ts {
		if tl.Camera == "porch" {
			t.Errorf("a porch tile: %+v", tl)
		}
	}
	if head := br.EvalString(`document.querySelector("#results .rtext").textContent`); !regexp.MustCompile(`^“something yellow”: \d+ moments?, best first · searched \d+ frames in [0-9.]+ ms`).MatchString(head) {
		t.Errorf("results heading %q", head)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return tiles()[0].Loaded }, "the first tile's thumbnail to load")

	// The frame view of the best yellow frame.
	br.Eval(`document.querySelector("#results .tile").click()`)
	testenv.WaitFor(t, 10*time.Second, is(`!document.getElementById("frameview").hidden && !!document.querySelector("#frameview .fv-label")`), "the frame view")
	if crop := br.EvalString(`document.querySelector("#frameview .crop").getAttribute("style")`); crop != "display: block; left: 25%; top: 25%; width: 50%; height: 50%;" {
		t.Errorf("frame view's crop rectangle: %q, want the garden's middle quarter", crop)
	}
	if p := br.EvalString(`document.querySelector('#frameview .fv-label[data-label="blue"] .p').textContent`); !regexp.MustCompile(`^probability 0\.0[0-9]{2} / 0\.5$`).MatchString(p) {
		t.Errorf("the garden's blue on the yellow frame shows %q", p)
	}
	br.Eval(`document.querySelector('#frameview .fv-label[data-label="blue"] .no').click()`)
	waitPage(10*time.Second, is(`document.querySelector("#frameview .fv-msg").textContent.startsWith("marked ✗ for blue")`),
		"the mark to be confirmed", `document.querySelector("#frameview .fv-msg").textContent`)
	var calib httpapi.Calibration
	if _, body := r.get("/api/calibration?camera=garden&label=blue"); json.Unmarshal(body, &calib) != nil || len(calib.Marks) != 1 || calib.Marks[0].Yes || calib.Marks[0].Score > 0.01 {
		t.Errorf("after \"✗ it is not\" on the stored frame: %s", body)
	}
	br.Eval(`document.querySelector("#frameview .like").click()`)
	testenv.WaitFor(t, 30*time.Second, func() bool { ts := tiles(); return len(ts) > 0 && ts[0].Kind == "similarity" }, "frames like the yellow one")
	// Every loop's yellow frame is the same picture: which moment comes
	// first among equals is not fixed, only that it is the garden's at ~1.
	if like := tiles()[0]; like.Camera != "garden" || like.Score < 0.999 {
		t.Errorf("frames like %s: first %+v, want a garden frame at similarity ~1", ts[0].ID, like)
	}
	if !is(`document.getElementById("frameview").hidden`)() {
		t.Errorf("the frame view stayed open over the similar frames")
	}

	// Try a label on the garden.
	const garden = `document.getElementById("cam-garden")`
	br.Eval(`(() => { const c = ` + garden + `; c.querySelector(".try-open").click();
		const f = c.querySelector(".try form").elements;
		f.label.value = "something yellow"; f.prompts.value = "yellow"; f.threshold.value = "0.5"; f.preview.click(); })()`)
	chart := func(threshold string) func() bool {
		return is(`(() => { const s = ` + garden + `.querySelector(".try svg.chart");
			return !!s && s.dataset.threshold === "` + threshold + `" && +s.dataset.points >= 10 && s.querySelectorAll("rect.event").length >= 1; })()`)
	}
	waitPage(30*time.Second, chart("0.5"), "the preview chart with 10 points or more and an event", garden+`.querySelector(".try").textContent`)
	count := br.EvalString(garden + `.querySelector(".try .count").textContent`)
	m := regexp.MustCompile(`^(\d+) events? on (\d+) stored frames since `).FindStringSubmatch(count)
	spans, thumbs := br.EvalString(`String(`+garden+`.querySelectorAll(".try rect.event").length)`), br.EvalString(`String(`+garden+`.querySelectorAll(".try .thumbs img").length)`)
	if m == nil || m[1] != spans || m[1] != thumbs {
		t.Errorf("preview %q: %s event spans, %s best-frame thumbnails", count, spans, thumbs)
	}
	t.Logf("preview: %s", count)
	// A new threshold re-runs it (once typing pauses).
	for _, th := range []string{"0.9", "0.5"} {
		br.Eval(`(() => { const i = ` + garden + `.querySelector(".try form").elements.threshold; i.value = "` + th + `"; i.dispatchEvent(new Event("input")); })()`)
		waitPage(30*time.Second, chart(th), "the preview at threshold "+th, garden+`.querySelector(".try").textContent`)
	}

	// Add it: the card shows it, marked as added on the page.
	br.Eval(garden + `.querySelector(".try form").elements.add.click()`)
	row := garden + `.querySelector('.label[data-label="something yellow"]')`
	testenv.WaitFor(t, 20*time.Second, is(`!!`+row+` && !`+row+`.querySelector(".added").hidden`), "the added label on the garden's card")
	label := func() *httpapi.Label {
		for _, l := range r.camera("garden").Labels {
			if l.Name == "something yellow" {
				return &l
			}
		}
		return nil
	}
	if l := label(); l == nil || !l.Added || l.Threshold != 0.5 {
		t.Errorf("the added label in /api/status: %+v", l)
	}
	if added := br.EvalString(`String(document.querySelectorAll(".label .added:not([hidden])").length)`); added != "1" {
		t.Errorf("%s labels marked as added on the page, want 1 (the config file's are not)", added)
	}
	// A second add is refused (409): the page says why, next to the form.
	br.Eval(garden + `.querySelector(".try form").elements.add.click()`)
	waitPage(10*time.Second, is(`(() => { const m = `+garden+`.querySelector(".try .msg"); return m.classList.contains("err") && m.textContent.includes("already"); })()`),
		"the refused second add, inline", garden+`.querySelector(".try .msg").textContent`)
	br.Eval(row + `.querySelector(".added .remove").click()`)
	testenv.WaitFor(t, 20*time.Second, is(`!`+row), "the removed label to leave the garden's card")
	if l := label(); l != nil {
		t.Errorf("after remove, /api/status still has %+v", l)
	}

	// The address opens the same state: results and a preview.
	state := r.base + "/?q=something%20yellow&try=garden&label=something%20yellow&prompts=yellow&threshold=0.5"
	br.Navigate(state)
	testenv.WaitFor(t, 30*time.Second, func() bool { ts := tiles(); return len(ts) > 0 && ts[0].Camera == "garden" }, "results from ?q=")
	waitPage(30*time.Second, chart("0.5"), "the preview from ?try=", garden+`.querySelector(".try").textContent`)
	if q := br.EvalString(`document.getElementById("q").value`); q != "something yellow" {
		t.Errorf("the search box shows %q", q)
	}
	if dir := os.Getenv("SIGLIPD_TEST_ARTIFACTS"); dir != "" { // docs/search.png
		// A few more loops of the garden's video than the checks need:
		// the picture shows several moments and events.
		testenv.WaitFor(t, 60*time.Second, func() bool { return gardenFrames() >= 30 }, "30 stored garden frames for the picture")
		os.MkdirAll(dir, 0o755)
		chromium(t, "--window-size=1200,900", "--screenshot="+filepath.Join(dir, "search.png"), state)
	}
}
