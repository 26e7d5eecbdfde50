// The officials' sealing page: click a page outline to fill the stamp position (x, y in PDF points
// from the lower-left corner of the page as stored, the stamp's lower-left). The number inputs stay
// the keyboard way. The outline is A4 until a file is chosen; then it takes the chosen page's size
// (W × H, its own coordinates) and /Rotate (R: the clockwise turn a viewer shows it with), which the
// hub reads from the file (POST data-measure, the form's own fields). One upload answers for every
// page (its "geometry"), so changing the page number redraws from that answer without sending the file
// again; only a page the answer lacks (beyond the hub's page limit) is asked for.
// The stamp's box (SW × SH in the page's own points) is the hub's, per seal and page rotation
// (data-stamps, from the rule the signer sizes the signature widget with): not computed here.
(function () {
  var box = document.getElementById("placer");
  if (!box) return;
  var form = box.closest("form");
  var mark = document.getElementById("placer-stamp");
  var xIn = document.getElementById("x"), yIn = document.getElementById("y");
  var fileIn = document.getElementById("document"), pageIn = document.getElementById("page");
  var sealIn = document.getElementById("seal");
  var stamps = JSON.parse(box.dataset.stamps || "{}");
  var W, H, R, SW = 0, SH = 0, LONG = 421;
  var known = null;  // the last upload's answer: {pages: n, byPage: {number: {width, height, rotate}}}
  box.hidden = false;

  // Shown points (from the outline's top-left, y down) <-> the page's own points (lower-left, y up).
  function toPage(dx, dy) {
    if (R === 90) return [dy, dx];
    if (R === 180) return [W - dx, dy];
    if (R === 270) return [W - dy, H - dx];
    return [dx, H - dy];
  }
  function toShown(x, y) {
    if (R === 90) return [y, x];
    if (R === 180) return [W - x, y];
    if (R === 270) return [H - y, W - x];
    return [x, H - y];
  }
  function shownSize() { return R % 180 ? [H, W] : [W, H]; }
  function scale() { return box.clientWidth / shownSize()[0]; }

  function stampBox() {
    var s = stamps[sealIn ? sealIn.value : ""], b = s && s[String(R)];
    SW = b ? b[0] : 0; SH = b ? b[1] : 0;
    box.dataset.stampWidth = SW; box.dataset.stampHeight = SH;
  }
  function adopt(width, height, rotate) {
    W = width; H = height; R = rotate;
    box.dataset.width = W; box.dataset.height = H; box.dataset.rotate = R;
    var s = shownSize(), k = LONG / Math.max(s[0], s[1]);
    box.style.width = Math.round(s[0] * k) + "px";
    box.style.height = Math.round(s[1] * k) + "px";
    stampBox();
    show();
  }
  function show() {
    if (xIn.value === "" || yIn.value === "" || !SW) { mark.style.display = "none"; return; }
    var k = scale(), x = +xIn.value, y = +yIn.value;
    var a = toShown(x, y), b = toShown(x + SW, y + SH);
    mark.style.display = "block";
    mark.style.borderRadius = SW === SH ? "50%" : "0";  // a round seal's ring; else the image's box
    mark.style.width = (Math.abs(b[0] - a[0]) * k) + "px";
    mark.style.height = (Math.abs(b[1] - a[1]) * k) + "px";
    mark.style.left = (Math.min(a[0], b[0]) * k) + "px";
    mark.style.top = (Math.min(a[1], b[1]) * k) + "px";
  }
  var pending = null;  // the file an upload is under way for
  function measure() {
    if (!fileIn || !fileIn.files || !fileIn.files.length) return;
    var data = new FormData(form), file = fileIn.files[0];
    pending = file;
    fetch(box.dataset.measure, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (g) {
        if (pending === file) pending = null;
        if (!g || fileIn.files[0] !== file) return;  // refused, or another file chosen meanwhile
        if (!known || known.file !== file) known = {file: file, pages: g.pages, byPage: {}};
        (g.geometry || [g]).forEach(function (p) { known.byPage[p.page] = p; });
        turnTo(false);
      })
      .catch(function () { if (pending === file) pending = null; });  // the typed position still works
  }
  // The chosen page (empty: the last) from what the hub said; ask (if ``ask``) only for a page it did
  // not describe.
  function turnTo(ask) {
    var file = fileIn && fileIn.files && fileIn.files[0];
    if (!file) return;
    if (!known || known.file !== file) { if (ask && pending !== file) measure(); return; }
    var n = pageIn && pageIn.value !== "" ? Math.floor(+pageIn.value) : known.pages;
    var p = known.byPage[n];
    if (p) { box.dataset.measured = p.page; adopt(p.width, p.height, p.rotate); }
    else if (ask && n >= 1 && n <= known.pages && pending !== file) measure();
  }

  box.addEventListener("click", function (ev) {
    if (!SW) return;
    var r = box.getBoundingClientRect(), k = scale();
    var p = toPage((ev.clientX - r.left) / k, (ev.clientY - r.top) / k);
    xIn.value = Math.max(0, Math.min(W - SW, p[0] - SW / 2)).toFixed(0);
    yIn.value = Math.max(0, Math.min(H - SH, p[1] - SH / 2)).toFixed(0);
    show();
  });
  xIn.addEventListener("input", show);
  yIn.addEventListener("input", show);
  if (sealIn) sealIn.addEventListener("change", function () { stampBox(); show(); });
  if (fileIn) fileIn.addEventListener("change", function () { known = null; measure(); });
  if (pageIn) pageIn.addEventListener("change", function () { turnTo(true); });
  adopt(+box.dataset.width, +box.dataset.height, +box.dataset.rotate);
  measure();
})();
