// The small total-speed graph: one sample a second of the last minutes, drawn on a canvas.

export class SpeedGraph {
  constructor(canvas, seconds) {
    this.canvas = canvas;
    this.samples = new Float64Array(seconds);
    this.count = 0;
    this.head = 0;
    this.colors = null;
  }

  push(value) {
    this.samples[this.head] = value;
    this.head = (this.head + 1) % this.samples.length;
    this.count = Math.min(this.count + 1, this.samples.length);
    this.draw();
  }

  themeChanged() {
    this.colors = null;
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 240;
    const height = canvas.clientHeight || 40;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    if (!this.colors) {
      const style = getComputedStyle(canvas);
      this.colors = {line: style.getPropertyValue("--primary").trim() || "#38bdf8",
        grid: style.getPropertyValue("--panel").trim() || "#232a37"};
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = this.colors.grid;
    ctx.lineWidth = 1;
    ctx.strokeRect(0.5, 0.5, width - 1, height - 1);
    const n = this.samples.length;
    let max = 0;
    for (let i = 0; i < this.count; i += 1) max = Math.max(max, this.samples[(this.head - 1 - i + n) % n]);
    if (max <= 0 || this.count < 2) return;
    const xs = (i) => width - 1 - ((this.count - 1 - i) * (width - 2)) / (n - 1);
    ctx.beginPath();
    for (let i = 0; i < this.count; i += 1) {
      const value = this.samples[(this.head - this.count + i + n) % n];
      const y = height - 2 - (value / max) * (height - 10);
      if (i === 0) ctx.moveTo(xs(i), y); else ctx.lineTo(xs(i), y);
    }
    ctx.strokeStyle = this.colors.line;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(xs(this.count - 1), height - 1);
    ctx.lineTo(xs(0), height - 1);
    ctx.closePath();
    ctx.globalAlpha = 0.25;
    ctx.fillStyle = this.colors.line;
    ctx.fill();
    ctx.globalAlpha = 1;
  }
}
