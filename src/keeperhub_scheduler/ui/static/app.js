// Every page: reload itself every data-refresh seconds while it is visible and nobody is typing.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main) return;
  var seconds = Number(main.getAttribute("data-refresh")) || 15;
  function later() {
    window.setTimeout(function () {
      var typing = document.activeElement && /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (document.hidden || typing) {
        later();
      } else {
        window.location.reload();
      }
    }, seconds * 1000);
  }
  later();
})();
