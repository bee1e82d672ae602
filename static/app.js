// Small behaviours htmx does not cover: local times, and a live transcript that follows its end.
(function () {
  "use strict";
  var timeFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });

  function showLocalTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.textContent = timeFormat.format(moment);
        element.title = element.getAttribute("datetime");
      }
    });
  }

  var following = true;
  function nearBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }
  function followTranscript() {
    var box = document.getElementById("transcript");
    if (box && following) box.scrollTop = box.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    var box = document.getElementById("transcript");
    if (box && box.hasAttribute("sse-connect")) {
      followTranscript();
      box.addEventListener("scroll", function () { following = nearBottom(box); });
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) { showLocalTimes(event.target); });
  document.addEventListener("htmx:sseMessage", followTranscript);
})();
