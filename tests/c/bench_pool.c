/* Thread pool wake-up cost (not run by check): jobs of 40 tasks x 5 us on a pool of 2, each after an idle gap of
 * 0..5000 us in which the caller either computes (busy) or sleeps; for each gap, when the worker ran its first task
 * (from the job's start) and how long the caller waited after finishing its own last task. A worker that has gone to
 * sleep (gaps longer than its spin) may wake only after the caller has run every task: the pool must then not make
 * the caller wait for it.   make -C tests/c bench-pool */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <stdatomic.h>
#include "cnnrt/threadpool.h"
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double t_start, t_first1, t_last0; static int got1;
static void spin_us(double us){double e=now()+us*1e-6; while(now()<e);}
static void task(void* ctx,size_t tid,size_t i){ (void)ctx;(void)i;
  if(tid==1 && !got1){got1=1;t_first1=now();}
  spin_us(5); if(tid==0) t_last0=now(); }
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(){
  cnn_threadpool* p2=cnn_threadpool_create(2);
  double gaps[]={0,20,50,100,200,500,1000,5000};
  for(int gi=0;gi<8;gi++){
    for(int mode=0;mode<2;mode++){
      double wk[40],tail[40]; int n=0, nowork=0;
      for(int r=0;r<40;r++){
        if(mode==0) spin_us(gaps[gi]); else {struct timespec s={0,(long)(gaps[gi]*1000)}; nanosleep(&s,NULL);}
        got1=0; t_start=now(); cnn_parallelize_1d(p2,task,NULL,40); double te=now();
        if(got1) wk[n]=(t_first1-t_start)*1e6; else {wk[n]=1e9; nowork++;}
        tail[n]=(te-t_last0)*1e6; n++;
      }
      qsort(wk,n,sizeof(double),cmp); qsort(tail,n,sizeof(double),cmp);
      printf("gap %6.0f us %s: worker first task after median %8.1f us (p90 %8.1f), caller waited after its last task median %7.1f us p90 %7.1f max %7.1f, worker absent %d/40\n",
        gaps[gi], mode?"sleep":"busy ", wk[n/2], wk[n*9/10], tail[n/2], tail[n*9/10], tail[n-1], nowork);
    }
  }
}
