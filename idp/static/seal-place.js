// The officials' sealing page: click a page outline to fill the stamp position (x, y in PDF points
// from the lower-left corner, the stamp's lower-left). The number inputs stay the keyboard way.
(function () {
  var box = document.getElementById("placer");
  if (!box) return;
  var mark = document.getElementById("placer-stamp");
  var xIn = document.getElementById("x"), yIn = document.getElementById("y");
  var W = +box.dataset.width, H = +box.dataset.height, S = +box.dataset.stamp;
  box.hidden = false;
  function scale() { return box.clientWidth / W; }
  function show() {
    if (xIn.value === "" || yIn.value === "") { mark.style.display = "none"; return; }
    var k = scale();
    mark.style.display = "block";
    mark.style.width = mark.style.height = (S * k) + "px";
    mark.style.left = (+xIn.value * k) + "px";
    mark.style.top = ((H - +yIn.value - S) * k) + "px";
  }
  box.addEventListener("click", function (ev) {
    var r = box.getBoundingClientRect(), k = scale();
    var cx = (ev.clientX - r.left) / k, cy = H - (ev.clientY - r.top) / k;
    xIn.value = Math.max(0, Math.min(W - S, cx - S / 2)).toFixed(0);
    yIn.value = Math.max(0, Math.min(H - S, cy - S / 2)).toFixed(0);
    show();
  });
  xIn.addEventListener("input", show);
  yIn.addEventListener("input", show);
  show();
})();
