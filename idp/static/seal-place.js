// The officials' sealing page: click a page outline to fill the stamp position (x, y in PDF points
// from the lower-left corner of the page as stored, the stamp's lower-left). The number inputs stay
// the keyboard way. The outline is A4 until a file is chosen; then it takes the chosen page's size
// (W × H, its own coordinates) and /Rotate (R: the clockwise turn a viewer shows it with), which the
// hub reads from the file (POST data-measure, the form's own fields).
(function () {
  var box = document.getElementById("placer");
  if (!box) return;
  var form = box.closest("form");
  var mark = document.getElementById("placer-stamp");
  var xIn = document.getElementById("x"), yIn = document.getElementById("y");
  var fileIn = document.getElementById("document"), pageIn = document.getElementById("page");
  var W, H, R, S = +box.dataset.stamp, LONG = 421;
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

  function adopt(width, height, rotate) {
    W = width; H = height; R = rotate;
    box.dataset.width = W; box.dataset.height = H; box.dataset.rotate = R;
    var s = shownSize(), k = LONG / Math.max(s[0], s[1]);
    box.style.width = Math.round(s[0] * k) + "px";
    box.style.height = Math.round(s[1] * k) + "px";
    show();
  }
  function show() {
    if (xIn.value === "" || yIn.value === "") { mark.style.display = "none"; return; }
    var k = scale(), x = +xIn.value, y = +yIn.value;
    var a = toShown(x, y), b = toShown(x + S, y + S);
    mark.style.display = "block";
    mark.style.width = mark.style.height = (S * k) + "px";
    mark.style.left = (Math.min(a[0], b[0]) * k) + "px";
    mark.style.top = (Math.min(a[1], b[1]) * k) + "px";
  }
  function measure() {
    if (!fileIn || !fileIn.files || !fileIn.files.length) return;
    var data = new FormData(form);
    fetch(box.dataset.measure, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (g) { if (g) { box.dataset.measured = g.page; adopt(g.width, g.height, g.rotate); } })
      .catch(function () {});  // the outline stays as it was; the typed position still works
  }

  box.addEventListener("click", function (ev) {
    var r = box.getBoundingClientRect(), k = scale();
    var p = toPage((ev.clientX - r.left) / k, (ev.clientY - r.top) / k);
    xIn.value = Math.max(0, Math.min(W - S, p[0] - S / 2)).toFixed(0);
    yIn.value = Math.max(0, Math.min(H - S, p[1] - S / 2)).toFixed(0);
    show();
  });
  xIn.addEventListener("input", show);
  yIn.addEventListener("input", show);
  if (fileIn) fileIn.addEventListener("change", measure);
  if (pageIn) pageIn.addEventListener("change", measure);
  adopt(+box.dataset.width, +box.dataset.height, +box.dataset.rotate);
  measure();
})();
