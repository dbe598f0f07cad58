// A small persistent thread pool. Workers spin briefly after a job (kernels come in bursts, and a
// futex wake costs more than a small kernel) and then sleep on a condition variable.
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <immintrin.h>

#include "common.h"

namespace ecomla {
namespace {

struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, chunk = 1;
  std::atomic<int64_t> next{0};
  std::atomic<int> pending{0};  // workers that have not finished this job
};

thread_local int tl_index = 0;
thread_local bool tl_inside = false;

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return threads_; }

  void resize(int threads) {
    stop();
    threads_ = threads < 1 ? 1 : threads;
    quit_ = false;
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this, i] { loop(i); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    int64_t maxChunks = (n + grain - 1) / grain;
    if (threads_ == 1 || maxChunks <= 1 || tl_inside) {
      fn(0, n);
      return;
    }
    // A few chunks per thread balance uneven work (causal attention) without much overhead.
    int64_t chunks = std::min<int64_t>(maxChunks, (int64_t)threads_ * 4);
    job_.fn = &fn;
    job_.n = n;
    job_.chunk = (n + chunks - 1) / chunks;
    job_.next.store(0, std::memory_order_relaxed);
    job_.pending.store(threads_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    tl_inside = true;
    work();
    tl_inside = false;
    // Spin briefly, then yield: on a loaded machine the worker we wait for may be waiting for
    // this very core, and spinning through our time slice would only delay it.
    for (int spins = 0; job_.pending.load(std::memory_order_acquire) != 0; spins++) {
      if (spins < 2000) _mm_pause();
      else std::this_thread::yield();
    }
  }

 private:
  void work() {
    for (;;) {
      int64_t begin = job_.next.fetch_add(job_.chunk, std::memory_order_relaxed);
      if (begin >= job_.n) break;
      (*job_.fn)(begin, std::min(job_.n, begin + job_.chunk));
    }
  }

  void loop(int index) {
    tl_index = index;
    tl_inside = true;
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      uint64_t g;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen && !quit_.load(std::memory_order_relaxed) && spins < 20000) {
        _mm_pause();
        spins++;
      }
      if (g == seen && !quit_.load()) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation_.load() != seen || quit_.load(); });
        g = generation_.load();
      }
      if (quit_.load()) return;
      seen = g;
      work();
      job_.pending.fetch_sub(1, std::memory_order_release);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false};
  Job job_;
};

int default_threads() {
  const char* env = std::getenv("ECOMLA_NUM_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? (int)hw : 1;
}

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // leaked on purpose: joining at exit can deadlock
  return *p;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  pool().run(n, grain < 1 ? 1 : grain, fn);
}
int num_threads() { return pool().size(); }
int thread_index() { return tl_index; }
void set_num_threads(int n) { pool().resize(n); }

}  // namespace ecomla
