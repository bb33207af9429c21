/* A small SVG heat map writer for the exploration example: one panel per
 * dtype, rows = block M, columns = block N, cell colour and label = TFLOP/s. */
#ifndef MF_SVG_HEATMAP_H
#define MF_SVG_HEATMAP_H

#include <stdio.h>

#define HEAT_MAX 8

typedef struct heat_panel {
    const char *title;
    int rows[HEAT_MAX], cols[HEAT_MAX]; /* block M values, block N values */
    int nrows, ncols;
    double value[HEAT_MAX][HEAT_MAX];   /* best TFLOP/s, 0 = not run      */
    int chosen_row, chosen_col;         /* the heuristic's pick, -1: none  */
} heat_panel;

/* Adds v at (bm, bn), keeping the best value per cell. */
static inline void heat_add(heat_panel *p, int bm, int bn, double v)
{
    int r = 0, c = 0;
    while (r < p->nrows && p->rows[r] != bm)
        r++;
    while (c < p->ncols && p->cols[c] != bn)
        c++;
    if (r == HEAT_MAX || c == HEAT_MAX)
        return;
    if (r == p->nrows)
        p->rows[p->nrows++] = bm;
    if (c == p->ncols)
        p->cols[p->ncols++] = bn;
    if (v > p->value[r][c])
        p->value[r][c] = v;
}

static inline void heat_mark(heat_panel *p, int bm, int bn)
{
    for (int r = 0; r < p->nrows; r++)
        for (int c = 0; c < p->ncols; c++)
            if (p->rows[r] == bm && p->cols[c] == bn)
                p->chosen_row = r, p->chosen_col = c;
}

/* White (0) to dark blue (the panel's best). */
static inline void heat_colour(double v, double best, char out[8])
{
    double t = best > 0 ? v / best : 0;
    snprintf(out, 8, "#%02x%02x%02x", (int)(255 - 200 * t), (int)(255 - 150 * t), 255);
}

/* A panel is at least as wide as its title ("e4m3 mma.sync, TFLOP/s"). */
static inline int heat_panel_width(const heat_panel *p, int cell)
{
    return p->ncols * cell > 200 ? p->ncols * cell : 200;
}

static inline int heat_write_svg(const char *path, const char *caption, heat_panel *panels, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const int cell = 90, left = 70, top = 60, gap = 60;
    int width = left, height = top + 40;
    for (int i = 0; i < n; i++) {
        width += heat_panel_width(&panels[i], cell) + gap;
        if (top + panels[i].nrows * cell + 40 > height)
            height = top + panels[i].nrows * cell + 40;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"13\">\n", width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"10\" y=\"20\" font-size=\"15\">%s</text>\n", caption);
    int x0 = left;
    for (int i = 0; i < n; i++) {
        heat_panel *p = &panels[i];
        double best = 0;
        for (int r = 0; r < p->nrows; r++)
            for (int c = 0; c < p->ncols; c++)
                best = p->value[r][c] > best ? p->value[r][c] : best;
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s, TFLOP/s</text>\n",
                x0, top - 25, p->title);
        for (int c = 0; c < p->ncols; c++)
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">bn=%d</text>\n",
                    x0 + c * cell + cell / 2, top - 6, p->cols[c]);
        for (int r = 0; r < p->nrows; r++) {
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">bm=%d</text>\n", x0 - 6,
                    top + r * cell + cell / 2 + 4, p->rows[r]);
            for (int c = 0; c < p->ncols; c++) {
                char colour[8];
                heat_colour(p->value[r][c], best, colour);
                int chosen = r == p->chosen_row && c == p->chosen_col;
                fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                           "stroke=\"%s\" stroke-width=\"%d\"/>\n", x0 + c * cell, top + r * cell,
                        cell, cell, p->value[r][c] > 0 ? colour : "#eeeeee",
                        chosen ? "#d00000" : "#999999", chosen ? 4 : 1);
                if (p->value[r][c] > 0)
                    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f%s</text>\n",
                            x0 + c * cell + cell / 2, top + r * cell + cell / 2 + 4,
                            p->value[r][c], chosen ? " *" : "");
            }
        }
        x0 += heat_panel_width(p, cell) + gap;
    }
    fprintf(f, "<text x=\"10\" y=\"%d\">rows: block M, columns: block N (best over warps and stages); red frame: the heuristic's pick</text>\n</svg>\n",
            height - 12);
    return fclose(f);
}

#endif
