// The theme dashboard: reads the metrics API and draws it with Chart.js (served locally).
// Filters live in the URL so a view can be shared; the UI speaks English and Chinese.
"use strict";

const I18N = {
  en: {
    title: "Feedback themes", model: "Model", start: "From", end: "To", interval: "Interval",
    day: "Day", week: "Week", month: "Month", group_by: "Break down by", channel: "Channel",
    segment: "Segment", language: "Language", api_key: "API key", apply: "Apply",
    items: "feedback items", review: "flagged for review", top: "top theme",
    shares_over_time: "Theme shares over time", sentiment_by_theme: "Sentiment per theme",
    breakdown: "Theme shares by group", rising: "Fastest rising themes (last 4 weeks vs the 4 before)",
    themes_table: "Themes, with the survey report's figure", theme: "Theme", share: "Share",
    negative_share: "Negative", report: "Survey report", examples: "Examples",
    skip: "Skip to the charts", loading: "Loading…", loaded: "Updated", none: "No data in this window.",
    need_key: "This API needs a key: enter one above.", no_text: "Example texts are shown only when the store keeps texts (CXTHEMES_STORE_TEXT).",
    negative: "negative", neutral: "neutral", positive: "positive", share_axis: "share of feedback",
    points: "points", error: "Could not load", switch: "中文",
  },
  zh: {
    title: "客户反馈主题", model: "模型", start: "开始", end: "结束", interval: "周期",
    day: "日", week: "周", month: "月", group_by: "分组", channel: "渠道", segment: "客群",
    language: "语言", api_key: "API 密钥", apply: "应用", items: "条反馈", review: "需复核",
    top: "最多的主题", shares_over_time: "各主题占比趋势", sentiment_by_theme: "各主题情感",
    breakdown: "按分组的主题占比", rising: "上升最快的主题（最近4周对比之前4周）", themes_table: "主题及调查报告中的数据",
    theme: "主题", share: "占比", negative_share: "负面", report: "调查报告", examples: "示例",
    skip: "跳到图表", loading: "加载中…", loaded: "已更新", none: "此时间段没有数据。",
    need_key: "此接口需要密钥：请在上方输入。", no_text: "只有在存储保留文本时（CXTHEMES_STORE_TEXT）才显示示例。",
    negative: "负面", neutral: "中性", positive: "正面", share_axis: "反馈占比",
    points: "个百分点", error: "无法加载", switch: "English",
  },
};
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                 "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939"];
const state = { lang: "en", taxonomy: null, charts: {}, data: {}, generation: 0 };
window.cxDashboard = state; // for tests and the curious

const $ = (id) => document.getElementById(id);
const t = (key) => I18N[state.lang][key] || key;
const pct = (x) => `${(100 * x).toFixed(1)}%`;

function themeName(id) {
  const theme = state.taxonomy && state.taxonomy.themes.find((x) => x.id === id);
  return theme ? theme.name[state.lang] || theme.name.en || id : id;
}

const DAY_MS = 86400000;

function isoDay(d) { return d.toISOString().slice(0, 10); }
function addDays(day, n) { return isoDay(new Date(Date.parse(day) + n * DAY_MS)); }

// A YYYY-MM-DD that names a real day, else null (a shared URL may hold anything).
function validDay(value) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value || "")) return null;
  const ms = Date.parse(value);
  return !Number.isNaN(ms) && isoDay(new Date(ms)) === value ? value : null;
}

// ``value`` if the <select> offers it, else null.
function option(id, value) {
  return [...$(id).options].some((o) => o.value === value) ? value : null;
}

function readFilters() {
  // The URL holds the page's own filters: "To" is the last day shown (inclusive).
  const q = new URLSearchParams(location.search);
  const end = validDay(q.get("end")) || isoDay(new Date());
  const start = validDay(q.get("start")) || addDays(end, -89);
  state.lang = q.get("lang") === "zh" ? "zh" : (state.lang || "en");
  $("start").value = start;
  $("end").value = end;
  $("interval").value = option("interval", q.get("interval")) || "week";
  $("group_by").value = option("group_by", q.get("group_by")) || "channel";
}

function writeFilters() {
  const q = new URLSearchParams({
    start: $("start").value, end: $("end").value, interval: $("interval").value,
    group_by: $("group_by").value, lang: state.lang,
  });
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

async function api(path) {
  const key = sessionStorage.getItem("cx-key");
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const r = await fetch(path, { headers });
  if (r.status === 401 || r.status === 403) {
    $("key-label").hidden = false;
    throw new Error(t("need_key"));
  }
  if (!r.ok) throw new Error(`${t("error")} ${path} (${r.status})`);
  return r.json();
}

function translate() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang-switch").textContent = t("switch");
  $("lang-switch").setAttribute("aria-label", state.lang === "zh" ? "Switch to English" : "切换到中文");
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  state.charts[id] = new Chart($(id), config);
}

function windowTotals(summary) {
  // The window's own figures: items, and per theme its count and sentiment split. From the
  // summary, which covers the chosen days only (trend periods are whole weeks or months).
  const totals = { items: summary.feedback_count, themes: {} };
  for (const th of summary.top_themes) totals.themes[th.theme] = { count: th.count, sentiment: th.sentiment };
  return totals;
}

function drawTrend(periods, ids) {
  const labels = periods.map((p) => p.period);
  chart("chart-trend", {
    type: "line",
    data: {
      labels,
      datasets: ids.map((id, k) => ({
        label: themeName(id), borderColor: COLOURS[k % COLOURS.length],
        backgroundColor: COLOURS[k % COLOURS.length], tension: 0.2,
        data: periods.map((p) => (p.themes.find((x) => x.theme === id) || { share: 0 }).share),
      })),
    },
    options: { maintainAspectRatio: false, animation: false,
      scales: { y: { ticks: { callback: (v) => pct(v) }, title: { display: true, text: t("share_axis") } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${pct(c.parsed.y)}` } } } },
  });
}

function drawSentiment(totals, ids) {
  const share = (id, s) => {
    const th = totals.themes[id];
    return th && th.count ? (th.sentiment[s] || 0) / th.count : 0;
  };
  chart("chart-sentiment", {
    type: "bar",
    data: {
      labels: ids.map(themeName),
      datasets: [
        { label: t("negative"), backgroundColor: "#c0392b", data: ids.map((id) => -share(id, "negative")) },
        { label: t("positive"), backgroundColor: "#1e8449", data: ids.map((id) => share(id, "positive")) },
      ],
    },
    options: { indexAxis: "y", maintainAspectRatio: false, animation: false,
      scales: { x: { stacked: true, min: -1, max: 1, ticks: { callback: (v) => pct(Math.abs(v)) } },
                y: { stacked: true } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${pct(Math.abs(c.parsed.x))}` } } } },
  });
}

function drawGroups(groups, ids) {
  // ``groups``: the summary's per-group figures, over the window only.
  const names = groups.map((g) => g.group || "—");
  chart("chart-groups", {
    type: "bar",
    data: {
      labels: names,
      datasets: ids.map((id, k) => ({
        label: themeName(id), backgroundColor: COLOURS[k % COLOURS.length],
        data: groups.map((g) => (g.themes.find((x) => x.theme === id) || { share: 0 }).share),
      })),
    },
    options: { maintainAspectRatio: false, animation: false,
      scales: { y: { ticks: { callback: (v) => pct(v) } } } },
  });
  return names;
}

function fillTable(totals, ids) {
  const body = $("themes-table").querySelector("tbody");
  body.replaceChildren();
  for (const id of ids) {
    const th = totals.themes[id] || { count: 0, sentiment: {} };
    const theme = state.taxonomy.themes.find((x) => x.id === id);
    const row = document.createElement("tr");
    const cells = [themeName(id), totals.items ? pct(th.count / totals.items) : "–",
                   th.count ? pct((th.sentiment.negative || 0) / th.count) : "–",
                   theme ? theme.report_figure : ""];
    cells.forEach((text, k) => {
      const td = document.createElement(k === 0 ? "th" : "td");
      if (k === 0) td.scope = "row";
      if (k === 1 || k === 2) td.className = "num";
      td.textContent = text;
      row.append(td);
    });
    body.append(row);
  }
}

function fillRising(summary) {
  const list = $("rising");
  list.replaceChildren();
  for (const th of summary.rising_themes) {
    const li = document.createElement("li");
    li.textContent = `${themeName(th.theme)}: ${pct(th.share)} (+${(100 * th.share_change).toFixed(1)} ${t("points")})`;
    list.append(li);
  }
  if (!summary.rising_themes.length) list.append(Object.assign(document.createElement("li"), { textContent: "–" }));
}

async function fillExamples(ids, params, generation) {
  const box = $("examples");
  const found = [];
  for (const id of ids.slice(0, 3)) {
    found.push([id, await api(`/v1/metrics/examples?theme=${id}&${params}&limit=2`)]);
  }
  if (generation !== state.generation) return;  // a newer load has started: drop these
  box.replaceChildren();
  for (const [id, data] of found) {
    if (!data.store_text) {
      box.append(Object.assign(document.createElement("p"), { textContent: t("no_text") }));
      return;
    }
    for (const ex of data.examples) {
      const div = document.createElement("div");
      div.className = "example";
      const meta = Object.assign(document.createElement("div"), { className: "meta",
        textContent: `${themeName(id)} · ${ex.channel || ""} · ${t(ex.sentiment)}` });
      const p = document.createElement("p");
      const i = ex.evidence ? ex.text.indexOf(ex.evidence) : -1;
      if (i >= 0) {  // highlight the evidence sentence (text nodes only: no HTML injection)
        const mark = Object.assign(document.createElement("mark"), { textContent: ex.evidence });
        p.append(ex.text.slice(0, i), mark, ex.text.slice(i + ex.evidence.length));
      } else {
        p.textContent = ex.text;
      }
      div.append(meta, p);
      box.append(div);
    }
  }
}

async function load() {
  const generation = ++state.generation;
  writeFilters();
  translate();
  $("status").textContent = t("loading");
  // "To" is inclusive; the API's end is exclusive: the day after it.
  const start = $("start").value, to = $("end").value;
  const end = validDay(to) ? addDays(to, 1) : to;
  const params = new URLSearchParams({ start, end }).toString();
  const interval = $("interval").value, groupBy = $("group_by").value;
  try {
    if (!state.taxonomy) state.taxonomy = await api("/v1/themes");
    // Rising: the last four weeks of the window against the four before them.
    const recent = new URLSearchParams({
      start: isoDay(new Date(Math.max(Date.parse(start), Date.parse(end) - 28 * DAY_MS))), end,
    }).toString();
    // Every figure but the time series comes from the summary, over the chosen days only
    // (limit=50: every theme with feedback, as long as the taxonomy has no more than 50).
    const [model, trend, summary, lately] = await Promise.all([
      api("/v1/model"),
      api(`/v1/metrics/themes?${params}&interval=${interval}`),
      api(`/v1/metrics/summary?${params}&limit=50&group_by=${groupBy}`),
      api(`/v1/metrics/summary?${recent}&limit=5`),
    ]);
    if (generation !== state.generation) return;  // filters changed while this was loading
    $("model-link").textContent = model.version;
    const totals = windowTotals(summary);
    const ids = state.taxonomy.themes.map((x) => x.id)
      .sort((a, b) => ((totals.themes[b] || {}).count || 0) - ((totals.themes[a] || {}).count || 0));
    state.data = { trend, summary, lately, totals };
    $("kpi-count").textContent = summary.feedback_count.toLocaleString();
    $("kpi-review").textContent = pct(summary.review_share);
    $("kpi-top").textContent = summary.top_themes.length ? themeName(summary.top_themes[0].theme) : "–";
    drawTrend(trend.periods, ids);
    drawSentiment(totals, ids);
    state.data.groupNames = drawGroups(summary.groups, ids);
    fillTable(totals, ids);
    fillRising(lately);
    await fillExamples(ids.filter((id) => (totals.themes[id] || {}).count), params, generation);
    if (generation !== state.generation) return;
    $("status").textContent = totals.items ? `${t("loaded")} ${new Date().toLocaleTimeString()}` : t("none");
  } catch (err) {
    $("status").textContent = err.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  readFilters();
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem("cx-key", key);
    load();
  });
  ["interval", "group_by", "start", "end"].forEach((id) => $(id).addEventListener("change", load));
  $("lang-switch").addEventListener("click", () => { state.lang = state.lang === "en" ? "zh" : "en"; load(); });
  load();
});
