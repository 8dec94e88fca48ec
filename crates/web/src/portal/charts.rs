//! The dashboard's pictures, drawn on the server as SVG by `plotters` (no script in the
//! browser). Each page shows the same figures as a table beside the picture, for screen
//! readers and for anyone who wants the numbers.

use plotters::prelude::*;

/// One day of the activity chart.
pub(super) struct Day {
    /// `MM-DD`.
    pub label: String,
    pub tickets: i64,
    pub notes: i64,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 260;
const TICKETS: RGBColor = RGBColor(29, 78, 137);
const NOTES: RGBColor = RGBColor(196, 106, 0);

/// Tickets (bars) and notes (a line) per day. An empty string if drawing failed, so a page
/// never breaks over its picture (the table beside it still has the figures).
pub(super) fn activity(days: &[Day]) -> String {
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = days
            .iter()
            .map(|d| d.tickets.max(d.notes))
            .max()
            .unwrap_or(0)
            .max(1);
        let n = days.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d((0..n).into_segmented(), 0..(top + top / 10 + 1))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => days
                    .get(*i as usize)
                    .map(|d| d.label.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc("per day")
            .draw()?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(TICKETS.filled())
                    .margin(2)
                    .data(days.iter().enumerate().map(|(i, d)| (i as i32, d.tickets))),
            )?
            .label("tickets created")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], TICKETS.filled()));
        chart
            .draw_series(LineSeries::new(
                days.iter()
                    .enumerate()
                    .map(|(i, d)| (SegmentValue::CenterOf(i as i32), d.notes)),
                NOTES.stroke_width(2),
            ))?
            .label("notes added")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], NOTES.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "the activity chart could not be drawn");
            String::new()
        }
    }
}

/// Horizontal bars: one per (label, value).
pub(super) fn bars(items: &[(String, i64)]) -> String {
    let mut svg = String::new();
    let height = 40 + 28 * items.len().max(1) as u32;
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let n = items.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(90)
            .build_cartesian_2d(0..(top + top / 10 + 1), (0..n).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(items.len().max(1))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => items
                    .get(*i as usize)
                    .map(|(l, _)| l.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(
            Histogram::horizontal(&chart)
                .style(TICKETS.filled())
                .margin(4)
                .data(items.iter().enumerate().map(|(i, (_, v))| (i as i32, *v))),
        )?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "a bar chart could not be drawn");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let days = vec![
            Day {
                label: "12-01".into(),
                tickets: 3,
                notes: 5,
            },
            Day {
                label: "12-02".into(),
                tickets: 0,
                notes: 1,
            },
        ];
        let svg = activity(&days);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("tickets created"));
        assert!(svg.contains("12-01"));
        let svg = bars(&[("delivered".into(), 7), ("dead".into(), 1)]);
        assert!(svg.contains("delivered") && svg.contains("dead"), "{svg}");
    }
}
