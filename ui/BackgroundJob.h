#pragma once
#include "core/Errors.h"

#include <QFutureWatcher>
#include <QObject>
#include <QString>
#include <QtConcurrent/QtConcurrentRun>

#include <exception>
#include <new>
#include <optional>
#include <utility>

namespace liverseg::ui {

// What a background job produced: a value, or the one-line message for the user.
template <typename Value>
struct JobResult {
    std::optional<Value> value;
    QString error;
};

// Runs `work` on the thread pool and calls `done` on `context`'s thread with the result.
// Exceptions stop at this boundary: core::InputError becomes its own message, anything else
// an "internal error" message; none reaches the Qt event loop. `work` must own what it uses
// (capture by value): it may outlive `context`, whose destruction only drops `done`.
template <typename Value, typename Work, typename Done>
QFutureWatcher<JobResult<Value>>* runInBackground(QObject* context, Work work, Done done) {
    auto* watcher = new QFutureWatcher<JobResult<Value>>(context);  // owned by context
    QObject::connect(watcher, &QFutureWatcher<JobResult<Value>>::finished, context,
                     [watcher, done = std::move(done)]() {
                         done(watcher->result());
                         watcher->deleteLater();
                     });
    watcher->setFuture(QtConcurrent::run([work = std::move(work)]() {
        JobResult<Value> result;
        try {
            result.value.emplace(work());
        } catch (const core::InputError& error) {
            result.error = QString::fromStdString(error.what());
        } catch (const std::bad_alloc&) {
            result.error = QStringLiteral("out of memory");
        } catch (const std::exception& error) {
            result.error = QStringLiteral("internal error: ") + QString::fromStdString(error.what());
        }
        return result;
    }));
    return watcher;
}

}  // namespace liverseg::ui
