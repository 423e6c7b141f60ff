// A virtualised list of fixed-height rows: only the rows in view (and a few around them)
// are in the DOM, positioned inside a spacer as tall as the whole list.

export class VirtualList {
  /**
   * `viewport`: the scrolling element; `renderRow(element, row)` fills a row element
   * (reused across rows, so it must set everything).
   */
  constructor(viewport, rowHeight, renderRow) {
    this.viewport = viewport;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.rows = [];
    this.shown = new Map();
    this.spacer = document.createElement('div');
    this.spacer.className = 'virtual-spacer';
    viewport.append(this.spacer);
    this.pending = false;
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  /** Replaces the rows and renders those in view. */
  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * this.rowHeight}px`;
    for (const element of this.shown.values()) element.remove();
    this.shown.clear();
    this.render();
  }

  /** Renders the rows in view again (after their data changed in place). */
  refresh() {
    for (const [index, element] of this.shown) this.renderRow(element, this.rows[index]);
  }

  /** Renders again the rows in view for which `test(row)` holds. */
  refreshWhere(test) {
    for (const [index, element] of this.shown) if (test(this.rows[index])) this.renderRow(element, this.rows[index]);
  }

  /** Scrolls so that row `index` is in view. */
  scrollToIndex(index) {
    const top = index * this.rowHeight;
    const { scrollTop, clientHeight } = this.viewport;
    if (top < scrollTop || top + this.rowHeight > scrollTop + clientHeight) {
      this.viewport.scrollTop = Math.max(0, top - clientHeight / 3);
    }
    this.render();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /** Puts the rows in view (plus an overscan) into the DOM, reusing row elements. */
  render() {
    const started = performance.now();
    const overscan = 8;
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - overscan);
    const last = Math.min(this.rows.length, Math.ceil((this.viewport.scrollTop + height) / this.rowHeight) + overscan);
    const spare = [];
    for (const [index, element] of this.shown) {
      if (index < first || index >= last) {
        this.shown.delete(index);
        spare.push(element);
      }
    }
    for (let index = first; index < last; index += 1) {
      if (this.shown.has(index)) continue;
      let element = spare.pop();
      if (!element) {
        element = document.createElement('div');
        element.setAttribute('role', 'listitem');
        this.spacer.append(element);
      }
      element.style.transform = `translateY(${index * this.rowHeight}px)`;
      this.renderRow(element, this.rows[index]);
      this.shown.set(index, element);
    }
    for (const element of spare) element.remove();
    this.onRender?.(performance.now() - started);
  }
}
