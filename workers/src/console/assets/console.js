// The live feed: new escalations, warnings and hot spots pushed by the
// server (SSE), added at the top without a reload. The browser reconnects
// by itself and sends Last-Event-ID, so nothing that happened meanwhile is missed.
(function () {
  var feed = document.getElementById("feed");
  if (!feed || !window.EventSource) return;
  var after = feed.getAttribute("data-after") || "";
  var source = new EventSource("/events/stream" + (after ? "?after=" + encodeURIComponent(after) : ""));
  source.addEventListener("feed", function (e) {
    var item = JSON.parse(e.data);
    if (document.querySelector('#feed li[data-id="' + CSS.escape(item.id) + '"]')) return;
    var li = document.createElement("li");
    li.className = "feed-item";
    li.setAttribute("data-id", item.id);
    li.setAttribute("data-type", item.type);
    li.setAttribute("data-petition", item.petition_id);
    var tag = document.createElement("span");
    tag.className = "tag " + item.type;
    tag.textContent = item.label;
    var link = document.createElement("a");
    link.href = "/petitions/" + encodeURIComponent(item.petition_id);
    link.textContent = item.petition_id;
    li.appendChild(tag);
    li.appendChild(link);
    li.appendChild(document.createTextNode(" " + item.text + " · " + item.at));
    feed.insertBefore(li, feed.firstChild);
    var empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
  });
})();
