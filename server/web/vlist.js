// A virtualized list: only the rows in view (plus a few above and below) are in the DOM, each
// absolutely placed over a spacer as tall as all the items. Row i is always pool[i % pool.length],
// so scrolling by one row repaints one row; a row is repainted only when its item changed.

const OVERSCAN = 4;

export class VirtualList {
  // makeRow() → {el, ...}; paint(row, id) fills a row for an item (DOM APIs and textContent only)
  constructor(container, spacer, makeRow, paint) {
    this.container = container;
    this.spacer = spacer;
    this.makeRow = makeRow;
    this.paint = paint;
    this.ids = [];
    this.pool = [];
    this.dirty = new Set();
    this.rowHeight = 0;
    this.top = 0; // scrollTop as the last range() read it (reading it after the paint would force a layout)
    this.viewHeight = 0;
    this.all = true; // repaint every row in view (new items, resize, theme)
    this.measure();
  }

  measure() {
    const value = parseFloat(getComputedStyle(this.container).getPropertyValue("--row-h"));
    this.rowHeight = value > 0 ? value : 44;
    this.viewHeight = this.container.clientHeight || 400;
    const size = Math.ceil(this.viewHeight / this.rowHeight) + 2 * OVERSCAN + 1;
    while (this.pool.length < size) {
      const row = this.makeRow();
      row.id = null;
      row.index = -1;
      row.el.hidden = true;
      this.container.appendChild(row.el);
      this.pool.push(row);
    }
    while (this.pool.length > size) this.pool.pop().el.remove();
    for (const row of this.pool) row.index = -1;
    this.all = true;
  }

  setItems(ids) {
    this.ids = ids;
    this.all = true;
  }

  invalidate(id) {
    this.dirty.add(id);
  }

  // The range of item indexes in the DOM now.
  range() {
    const top = this.container.scrollTop;
    this.top = top;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.ids.length, first + this.pool.length);
    return [first, last];
  }

  render() {
    const ids = this.ids;
    const height = ids.length * this.rowHeight;
    if (this.spacer.style.height !== height + "px") this.spacer.style.height = height + "px";
    const [first, last] = this.range();
    const size = this.pool.length;
    const used = new Set();
    for (let i = first; i < last; i += 1) {
      const row = this.pool[i % size];
      used.add(row);
      const id = ids[i];
      if (row.index !== i) {
        row.el.style.transform = `translateY(${i * this.rowHeight}px)`;
        row.index = i;
      }
      if (row.el.hidden) row.el.hidden = false;
      if (this.all || row.id !== id || this.dirty.has(id)) {
        row.id = id;
        this.paint(row, id);
      }
    }
    for (const row of this.pool) {
      if (!used.has(row) && !row.el.hidden) {
        row.el.hidden = true;
        row.id = null;
        row.index = -1;
      }
    }
    this.dirty.clear();
    this.all = false;
  }
}
