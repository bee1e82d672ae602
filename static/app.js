// Small behaviours htmx does not cover: local times, and a live transcript that follows its end.
(function () {
  "use strict";
  // Short enough for a phone's table cell; the year only when it is not this one.
  var thisYear = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "numeric", minute: "2-digit"
  });
  var otherYear = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit"
  });

  function showLocalTimes(root) {
    var year = new Date().getFullYear();
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.textContent = (moment.getFullYear() === year ? thisYear : otherYear).format(moment);
        element.title = moment.toString();
      }
    });
  }

  // Follow the end of a live transcript unless the reader has scrolled away from it: whether to
  // follow is decided as each line arrives, from where the reader is at that moment.
  var following = false;
  function nearEnd(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    var box = document.getElementById("transcript");
    if (box && box.hasAttribute("sse-connect")) box.scrollTop = box.scrollHeight;
  });
  document.addEventListener("htmx:afterSwap", function (event) { showLocalTimes(event.target); });
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    following = nearEnd(event.target);
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    if (following) event.target.scrollTop = event.target.scrollHeight;
  });
})();
